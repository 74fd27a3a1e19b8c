"""`Evaluation` and `evaluate`: run a holdout of cases through each tier and measure.

Every case runs on every tier asked for, concurrently under `Limits`; each run is
metered (tokens, dollars, OpenAI-equivalent dollars, latency) and judged by the
case's check, the evaluation's check, or equality with the expected value. The
report (`EvalReport`, in `_eval_report`) gives per-tier success with a 95% interval
and the calibration the `CalibratedRouter` reads.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from tiered._agent import Agent, AgentResult
from tiered._calibration import ordered_tiers
from tiered._catalog import Tier
from tiered._errors import TieredError, UserError
from tiered._escalation import classify_failure
from tiered._eval_report import CaseOutcome, EvalReport
from tiered._ledger import Ledger
from tiered._orchestrator import Limits
from tiered._tool import Tool
from tiered.models import Model

__all__ = ("Case", "Evaluation", "evaluate", "load_cases")

_MISSING: Any = object()
Verdict = bool | str | None
"""What a check returns: True (or None) for a pass, False or a reason for a failure."""


@dataclass(frozen=True, kw_only=True)
class Case:
    """One input with what a good answer is: an expected value or a check function."""

    input: Any
    """What the agent is given (validated against its `input_type`)."""
    expected: Any = _MISSING
    """The right output; compared with == unless a check is given."""
    check: Callable[..., Verdict] | None = None
    """`check(output)`, `check(output, case)` or `check(output, case, result)`."""
    category: str | None = None
    """Groups cases for per-category calibration ("simple", "parallel", ...)."""
    id: str = ""
    """A name for the case in reports; defaults to its position."""
    tools: Sequence[Tool] = ()
    """Tools this case adds to the agent's (e.g. a benchmark's per-case functions)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Anything a check needs (a ground truth, a scorer's inputs)."""


@dataclass(kw_only=True)
class Evaluation:
    """An agent, its cases and how to judge them; what `tiered eval FILE` runs."""

    agent: Agent[Any]
    """The agent under test; its instructions, tools and output type key the calibration."""
    cases: Sequence[Case] | str | os.PathLike[str]
    """Cases, or a JSONL file of {"input", "expected"?, "category"?, "id"?} lines."""
    check: Callable[..., Verdict] | None = None
    """A check for every case that has none of its own."""
    name: str = ""
    """For the report; defaults to the agent's name."""
    models: Mapping[Tier, Model] | None = None
    """A fixed ladder (tests, a custom setup); None: the one `evaluate` is given, else the
    environment's."""

    def loaded_cases(self) -> list[Case]:
        """The cases, read from the JSONL file if one was named, ids filled in."""
        cases = load_cases(self.cases) if isinstance(self.cases, str | os.PathLike) else self.cases
        return [
            c if c.id else Case(**{**c.__dict__, "id": f"case_{i}"}) for i, c in enumerate(cases)
        ]


def load_cases(path: str | os.PathLike[str]) -> list[Case]:
    """Read a JSONL file of cases: one object a line with `input` and optionally
    `expected`, `category`, `id`; other keys go to `metadata`."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"no cases file at {str(file)!r}: pass a JSONL file, one case a line")
    cases = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{file}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or "input" not in row:
            raise UserError(f"{file}:{number}: each line needs an object with an 'input' key")
        known = {"input", "expected", "category", "id"}
        cases.append(
            Case(
                input=row["input"],
                expected=row.get("expected", _MISSING),
                category=row.get("category"),
                id=str(row.get("id", "")),
                metadata={k: v for k, v in row.items() if k not in known},
            )
        )
    return cases


def _judge(check: Callable[..., Verdict], output: Any, case: Case, result: Any) -> str | None:
    """None for a pass, else the reason for the failure."""
    try:
        arity = len(inspect.signature(check).parameters)
    except (TypeError, ValueError):
        arity = 1
    args = (output, case, result)[: max(1, min(arity, 3))]
    verdict = check(*args)
    if verdict is True or verdict is None:
        return None
    return "rejected by the check" if verdict is False else str(verdict)


def _verdict(evaluation: Evaluation, case: Case, result: AgentResult[Any]) -> str | None:
    check = case.check or evaluation.check
    if check is not None:
        return _judge(check, result.output, case, result)
    if result.output == case.expected:
        return None
    return f"expected {case.expected!r}, got {result.output!r}"[:300]


ProgressFn = Callable[[CaseOutcome, int, int], None]
"""Called after each finished case with (outcome, done, total)."""


async def evaluate(
    evaluation: Evaluation,
    *,
    models: Mapping[Tier, Model] | None = None,
    tiers: Sequence[Tier | str] | None = None,
    limits: Limits | None = None,
    progress: ProgressFn | None = None,
) -> EvalReport:
    """Run every case on each tier (all of `models`, or those named) and report.

    `models` defaults to the environment's ladder. `limits.concurrency` bounds the
    runs in flight, `limits.per_model` the runs per model, `limits.subtask_timeout` one
    run, and `limits.deadline` the whole evaluation (the report then holds the runs that
    finished). A run that raises counts as a failure of its kind; it never stops the rest.
    """
    if models is None:
        models = evaluation.models
    if models is None:
        from tiered.models import models_from_env

        models = models_from_env()
    chosen = ordered_tiers([Tier(t) for t in tiers] if tiers else list(models))
    missing = [t.value for t in chosen if t not in models]
    if missing:
        raise UserError(
            f"no model for tier(s) {', '.join(missing)}: the ladder has "
            f"{', '.join(t.value for t in models)}"
        )
    limits = limits or Limits()
    cases = evaluation.loaded_cases()
    if not cases:
        raise UserError("the evaluation has no cases")
    for case in cases:
        if case.check is None and evaluation.check is None and case.expected is _MISSING:
            raise UserError(
                f"case {case.id!r} has no expected value and no check: give it `expected=` "
                "or give the Evaluation a `check=`"
            )
    limiter = anyio.CapacityLimiter(limits.concurrency)
    per_model: dict[str, anyio.CapacityLimiter] = {}
    outcomes: list[CaseOutcome] = []
    total = len(cases) * len(chosen)

    def model_limiter(name: str) -> anyio.CapacityLimiter | None:
        per = limits.per_model
        n = per.get(name) if isinstance(per, Mapping) else per
        if n is None:
            return None
        if name not in per_model:
            per_model[name] = anyio.CapacityLimiter(n)
        return per_model[name]

    async def one(case: Case, tier: Tier) -> None:
        model = models[tier]
        slot = model_limiter(model.spec.name)
        async with limiter:
            if slot is not None:
                async with slot:
                    outcome = await _run_case(evaluation, case, tier, model, limits)
            else:
                outcome = await _run_case(evaluation, case, tier, model, limits)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome, len(outcomes), total)

    with anyio.move_on_after(limits.deadline):  # past the deadline: report what finished
        async with anyio.create_task_group() as tg:
            for case in cases:  # case-major: a cut-short run has every tier on what it did
                for tier in chosen:
                    tg.start_soon(one, case, tier)
    order = {(c.id, t): i for i, (c, t) in enumerate((c, t) for t in chosen for c in cases)}
    outcomes.sort(key=lambda o: order[(o.case_id, o.tier)])
    return EvalReport(
        name=evaluation.name or evaluation.agent.name,
        agent=evaluation.agent,
        models={t: models[t].spec.name for t in chosen},
        tiers=tuple(chosen),
        outcomes=tuple(outcomes),
    )


async def _run_case(
    evaluation: Evaluation, case: Case, tier: Tier, model: Model, limits: Limits
) -> CaseOutcome:
    ledger = Ledger()
    started = time.perf_counter()
    result: AgentResult[Any] | None = None
    failure: str | None = None
    detail = ""
    try:
        with anyio.fail_after(limits.subtask_timeout):
            result = await evaluation.agent.run(
                case.input, model=model, ledger=ledger, extra_tools=case.tools
            )
        problem = _verdict(evaluation, case, result)
        if problem is not None:
            failure, detail = "wrong", problem
    except UserError:
        raise
    except (TieredError, TimeoutError) as exc:
        classified = classify_failure(exc, tier)
        failure = classified.kind.value if classified is not None else "error"
        detail = f"{type(exc).__name__}: {exc}"[:300]
    except Exception as exc:  # a check or tool bug counts against the case, not the run
        failure, detail = "error", f"{type(exc).__name__}: {exc}"[:300]
    usage = ledger.usage
    return CaseOutcome(
        case_id=case.id,
        category=case.category,
        tier=tier,
        model=model.spec.name,
        succeeded=failure is None,
        failure=failure,
        detail=detail,
        cost=ledger.cost,
        equivalent_cost=ledger.equivalent_cost,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        latency_s=time.perf_counter() - started,
        turns=result.turns if result is not None else usage.requests,
        output=result.output if result is not None else None,
        confidence=result.confidence if result is not None else None,
    )
