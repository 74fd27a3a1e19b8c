"""The BFCL evaluation file: `tiered eval bench/bfcl/evaluation.py --tiers nano,mini`.

Environment: BFCL_PER_CATEGORY (cases per category, default 20, spread evenly over
the category), BFCL_CATEGORIES (comma-separated, default the five non-live ones),
BFCL_HELD_OUT (32: cases none of which is among the 32 per category measured, to tune
prompts on), BFCL_SHIFT (0.5: the cases halfway between the usual ones; they overlap a
larger measured set), BFCL_IDS (comma-separated: only those cases), BFCL_CACHE (where the wheel
is kept). Each case's functions become `Tool.from_schema` tools; the calls the agent
makes (every turn, mapped back to BFCL's dotted names) are scored by BFCL's own AST
checker. Cases alternate between the calibration half and the report half
(`metadata["split"]`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from bench.bfcl.checker import score_with_bfcl
from bench.bfcl.data import CATEGORIES, BfclCase, load_category
from bench.bfcl.rule import score
from tiered import Agent, AgentResult, AssistantMessage, Case, Evaluation, Tool

INSTRUCTIONS = (
    "You answer requests by calling the functions provided. Make every call the request "
    "needs, with argument values taken from the request. If no function fits the "
    "request, call none and say so in one sentence. After your calls, reply with one "
    "short sentence."
)

agent: Agent[Any] = Agent(name="bfcl", instructions=INSTRUCTIONS, max_turns=6, max_repairs=1)


def _recorded(**arguments: Any) -> str:
    return json.dumps({"status": "ok"})


def tools_for(case: BfclCase) -> list[Tool]:
    """A `Tool.from_schema` per BFCL function (names mapped to legal ones)."""
    return [
        Tool.from_schema(f["name"], f.get("description", ""), f["parameters"], _recorded)
        for f in case.functions
    ]


def calls_made(result: AgentResult[Any], tools: list[Tool]) -> list[dict[str, dict[str, Any]]]:
    """Every call of the run as BFCL writes them: [{dotted name: arguments}], in order.

    Arguments go through the tool's validator (which drops the nulls strict mode asks
    for in place of omitted optional fields); unparseable ones are kept raw.
    """
    by_api_name = {t.name: t for t in tools}
    out: list[dict[str, dict[str, Any]]] = []
    for message in result.messages:
        if not isinstance(message, AssistantMessage):
            continue
        for call in message.tool_calls:
            tool = by_api_name.get(call.name)
            try:
                raw = json.loads(call.arguments or "{}")
            except ValueError:
                raw = {}
            if tool is None:
                out.append({call.name: raw})
                continue
            try:
                args = tool.args_schema.validate(raw)
            except ValueError:
                args = raw
            out.append({getattr(tool, "original_name", tool.name): dict(args)})
    return out


def _input(case: BfclCase) -> str:
    return "\n\n".join(str(m["content"]) for m in case.question if m.get("content"))


def check(output: Any, case: Case, result: AgentResult[Any]) -> bool | str:
    """BFCL's AST verdict on the calls the run made (traced to $BFCL_TRACE if set, with
    our own rule's verdict beside it)."""
    bfcl: BfclCase = case.metadata["bfcl"]
    calls = calls_made(result, list(case.tools))
    valid, error = score_with_bfcl(bfcl.category, bfcl.functions, calls, bfcl.ground_truth)
    trace = os.environ.get("BFCL_TRACE")
    if trace:
        ours = score(bfcl.category, bfcl.functions, calls, bfcl.ground_truth)
        row = {"id": case.id, "tier": result.tier.value, "calls": calls, "turns": result.turns,
               "bfcl": [valid, error], "ours": list(ours),
               "confidence": result.confidence}  # fmt: skip
        with open(trace, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
    return True if valid else f"{error} ({len(calls)} calls)"


def pick(cases: list[BfclCase], n: int, shift: float = 0.0) -> list[BfclCase]:
    """`n` cases spread evenly over the category (BFCL orders cases by topic); `shift`
    0.5 takes the cases halfway between those of 0 (a disjoint set to tune prompts on)."""
    if n >= len(cases):
        return cases
    step = len(cases) / n
    return [cases[int((i + shift) * step)] for i in range(n)]


def held_out(cases: list[BfclCase], n: int, measured: int) -> list[BfclCase]:
    """`n` cases spread evenly over those that `pick(cases, measured)` leaves out: a set to
    tune prompts on that shares no case with the measured one. A `shift` alone does not
    promise that: every case of a shifted 8 is among the unshifted 32."""
    taken = {c.id for c in pick(cases, measured)}
    return pick([c for c in cases if c.id not in taken], n)


def build(
    per_category: int,
    categories: tuple[str, ...] = CATEGORIES,
    shift: float = 0.0,
    measured: int = 0,
) -> Evaluation:
    """The evaluation over `per_category` cases of each category (`measured`: held out
    from the set of that many per category)."""
    cases = []
    for category in categories:
        loaded = load_category(category)
        chosen = (
            held_out(loaded, per_category, measured)
            if measured
            else pick(loaded, per_category, shift)
        )
        for i, b in enumerate(chosen):
            cases.append(
                Case(
                    input=_input(b),
                    category=category,
                    id=b.id,
                    tools=tools_for(b),
                    metadata={"bfcl": b, "split": "calibrate" if i % 2 == 0 else "report"},
                )
            )
    # round-robin over categories, so an interrupted run has some of every category
    seen: Counter[str] = Counter()
    position: dict[str, int] = {}
    for c in cases:
        position[c.id] = seen[str(c.category)]
        seen[str(c.category)] += 1
    cases.sort(key=lambda c: (position[c.id], categories.index(str(c.category))))
    return Evaluation(agent=agent, cases=cases, check=check, name="bfcl")


def evaluation() -> Evaluation:
    """What `tiered eval` loads; sized by the environment."""
    per = int(os.environ.get("BFCL_PER_CATEGORY", "20"))
    names = os.environ.get("BFCL_CATEGORIES")
    chosen = tuple(c.strip() for c in names.split(",")) if names else CATEGORIES
    shift = float(os.environ.get("BFCL_SHIFT", "0"))
    built = build(per, chosen, shift, int(os.environ.get("BFCL_HELD_OUT", "0")))
    ids = os.environ.get("BFCL_IDS")  # the cases an interrupted chunk did not finish
    if not ids:
        return built
    keep = set(ids.split(","))
    cases = [c for c in built.loaded_cases() if c.id in keep]
    return Evaluation(agent=agent, cases=cases, check=check, name="bfcl")
