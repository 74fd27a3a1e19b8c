"""Budget planning before fan-out: what a plan should cost, per subtask and per tier.

After planning and before any subtask runs, each subtask is routed by the rules and
priced at its start tier: the first request's input (instructions, task, arguments,
tool schemas, plus an allowance per dependency output) and an expected output, times
the output cap each call reserves (the agent's `max_output_tokens`, else the default
cap), times the calls its shape suggests (one, or three with tools: call, result,
answer). It is an estimate, not a bound (the reservation before each call is the
bound), but it prices output as the reservations do, so a plan that fits is not then
refused call by call; it exists so a plan that cannot fit the budget is refused, or
routed down until it fits, before money is spent on half of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _escaped
from typing import Any, Literal

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._errors import PlanOverBudget
from tiered._ledger import Budget, Ledger
from tiered._plan import Plan, Stakes, Subtask
from tiered._ratelimit import DEFAULT_OUTPUT_CAP
from tiered._routing import RouteRequest, RuleRouter, estimate_tokens
from tiered._usage import Usage
from tiered.models import Ladder

__all__ = (
    "PlanBudget",
    "PlanEstimate",
    "SubtaskEstimate",
    "estimate_input",
    "estimate_plan",
    "fit_plan",
)

PlanBudget = Literal["refuse", "fit", "allow"]
"""What to do when a plan's estimate is over the dollar budget ("allow": only report it;
the per-call reservations still hold the budget)."""

DEPENDENCY_TOKENS = 200
"""Allowance for one dependency's output in a subtask's prompt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskEstimate:
    """One subtask's expected cost on its start tier."""

    tier: Tier
    calls: int
    input_tokens: int
    output_tokens: int
    usd: Decimal
    """At the budget's dollars: real prices, or the OpenAI equivalent for a free model."""


@dataclass(slots=True, kw_only=True)
class PlanEstimate:
    """A plan's expected cost before it runs, next to the budget it must fit."""

    subtasks: dict[str, SubtaskEstimate] = field(default_factory=dict)
    budget_usd: Decimal | None = None
    downgraded: dict[str, str] = field(default_factory=dict)
    """Subtask id -> 'mini -> nano' for subtasks `plan_budget="fit"` routed down."""

    @property
    def usd(self) -> Decimal:
        """The whole plan's estimate."""
        return sum((e.usd for e in self.subtasks.values()), Decimal(0))

    def by_tier(self) -> dict[Tier, Decimal]:
        """The estimate per start tier."""
        out: dict[Tier, Decimal] = {}
        for e in self.subtasks.values():
            out[e.tier] = out.get(e.tier, Decimal(0)) + e.usd
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (Decimals as strings)."""
        return {
            "usd": str(self.usd),
            "budget_usd": None if self.budget_usd is None else str(self.budget_usd),
            "by_tier": {t.value: str(v) for t, v in self.by_tier().items()},
            "downgraded": dict(self.downgraded),
            "subtasks": {
                k: {
                    "tier": e.tier.value,
                    "calls": e.calls,
                    "input_tokens": e.input_tokens,
                    "output_tokens": e.output_tokens,
                    "usd": str(e.usd),
                }
                for k, e in self.subtasks.items()
            },
        }


def _estimate_one(
    s: Subtask, agent: Agent[Any, Any], tier: Tier, ladder: Ladder, ledger: Ledger
) -> SubtaskEstimate:
    prompt = agent.instructions + s.instructions + json.dumps(s.arguments, default=str)
    tool_tokens = sum(estimate_tokens(json.dumps(t.definition().parameters)) for t in agent.tools)
    read = len(s.depends_on) if agent.uses_dependencies else 0  # upstream outputs it is sent
    first = estimate_tokens(prompt) + tool_tokens + DEPENDENCY_TOKENS * read
    calls = 3 if agent.tools else 1
    out = agent.max_output_tokens or DEFAULT_OUTPUT_CAP  # what each call's reservation holds
    # each later call re-reads the prompt plus what came before
    input_tokens = sum(first + i * out for i in range(calls))
    usage = Usage(input_tokens=input_tokens, output_tokens=out * calls, requests=calls)
    cost, equivalent = ledger.quote(ladder[tier].spec, usage)
    return SubtaskEstimate(
        tier=tier,
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=out * calls,
        usd=cost if cost > 0 else equivalent,
    )


def estimate_plan(
    plan: Plan,
    executors: Mapping[str, Agent[Any, Any]],
    ladder: Ladder,
    budget: Budget,
    ledger: Ledger,
) -> PlanEstimate:
    """Route each subtask by the rules and price it at its start tier."""
    rules = RuleRouter()
    estimate = PlanEstimate(budget_usd=budget.usd)
    for s in plan.subtasks:
        agent = executors[s.agent]
        request = RouteRequest(
            subtask=s,
            agent=agent,
            estimated_input_tokens=estimate_tokens(s.instructions + agent.instructions),
            ladder=ladder,
        )
        tier = rules.decide(request).tier
        estimate.subtasks[s.id] = _estimate_one(s, agent, tier, ladder, ledger)
    return estimate


def fit_plan(
    plan: Plan,
    executors: Mapping[str, Agent[Any, Any]],
    ladder: Ladder,
    budget: Budget,
    ledger: Ledger,
    mode: PlanBudget,
) -> tuple[Plan, PlanEstimate]:
    """Refuse a plan whose estimate exceeds the dollar budget, or route subtasks down.

    `"fit"` moves the most expensive subtask one rung down (as a tier hint the rules
    honour) until the estimate fits or nothing can go lower; then, or with `"refuse"`,
    an estimate still over budget raises `BudgetExceeded` naming it.
    """
    estimate = estimate_plan(plan, executors, ladder, budget, ledger)
    limit = budget.usd
    if limit is None or estimate.usd <= limit or mode == "allow":
        return plan, estimate
    subtasks = {s.id: s for s in plan.subtasks}
    original = {k: e.tier for k, e in estimate.subtasks.items()}
    while mode == "fit" and estimate.usd > limit:
        movable = [
            (e.usd, k)
            for k, e in estimate.subtasks.items()
            if ladder.below(e.tier) is not None and not subtasks[k].plan_shaped
        ]
        if not movable:
            break
        _, sid = max(movable)
        lower = ladder.below(estimate.subtasks[sid].tier)
        assert lower is not None
        s = subtasks[sid] = subtasks[sid].model_copy(
            update={"tier": lower, "stakes": Stakes.NORMAL}
        )
        estimate.subtasks[sid] = _estimate_one(s, executors[s.agent], lower, ladder, ledger)
        estimate.downgraded[sid] = f"{original[sid].value} -> {lower.value}"
    if estimate.usd > limit:
        tiers = ", ".join(f"{t.value} ${v:.6f}" for t, v in estimate.by_tier().items())
        raise PlanOverBudget(limit=limit, estimate=estimate.usd, by_tier=tiers)
    fitted = plan.model_copy(update={"subtasks": tuple(subtasks[s.id] for s in plan.subtasks)})
    return fitted, estimate


_ARGUMENTS = json.JSONEncoder(default=str)
"""`json.dumps(..., default=str)` without building an encoder per call."""

_TOOL_TOKENS: dict[int, tuple[Sequence[Any], int]] = {}
"""Agent tools tuple id -> (the tuple, its schemas' token estimate), holding the tuple so
its id cannot be reused while cached: an agent's tools do not change between subtasks."""


def _tool_tokens(tools: Sequence[Any]) -> int:
    if not tools:
        return 0
    hit = _TOOL_TOKENS.get(id(tools))
    if hit is not None and hit[0] is tools:
        return hit[1]
    tokens = sum(estimate_tokens(json.dumps(t.definition().parameters)) for t in tools)
    if len(_TOOL_TOKENS) >= 1024:  # agents made on the fly: keep the cache bounded
        _TOOL_TOKENS.clear()
    _TOOL_TOKENS[id(tools)] = (tools, tokens)
    return tokens


def _json_chars(arguments: Mapping[str, Any]) -> int:
    """`len(json.dumps(arguments, default=str))`, counted without the encoder for the
    common flat object of strings (each string escaped by the C encoder alone)."""
    chars = 2 * len(arguments)  # ', ' between items and the braces; ': ' in each item
    for key, value in arguments.items():
        if type(key) is not str or type(value) is not str:
            return len(_ARGUMENTS.encode(arguments))
        chars += len(_escaped(key)) + len(_escaped(value)) + 2
    return chars if arguments else 2


def estimate_input(agent: Agent[Any, Any], context: str, subtask: Subtask) -> int:
    """A routing estimate of the first request's input tokens."""
    chars = len(agent.instructions) + len(context) + _json_chars(subtask.arguments)
    return chars // 4 + 1 + _tool_tokens(agent.tools)  # `estimate_tokens` of the whole text
