"""What a run produced: per-subtask outputs and attempts, totals by tier, the
all-flagship counterfactual, and a readable report. Serialises to JSON."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic_core import to_jsonable_python

from tiered._catalog import Tier
from tiered._escalation import Attempt
from tiered._estimate import PlanEstimate
from tiered._ledger import TierTotals
from tiered._plan import Plan, Subtask
from tiered._routing import RouteDecision
from tiered._usage import Usage

__all__ = ("RunResult", "RunStatus", "SubtaskResult", "SubtaskStatus")


class SubtaskStatus(enum.StrEnum):
    """Where a subtask ended up."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Did not run: a dependency failed, or the budget or deadline stopped new work."""


class RunStatus(enum.StrEnum):
    """How the run as a whole ended."""

    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    """Some subtasks failed or were skipped; the finished ones are kept."""
    FAILED = "failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    DEADLINE = "deadline"
    CANCELLED = "cancelled"
    ANSWER_REJECTED = "answer_rejected"
    """The final answer failed the run's answer check (`error` says which claim)."""


@dataclass(slots=True, kw_only=True)
class SubtaskResult:
    """One subtask: its output (if any), every attempt, and how it ended."""

    subtask: Subtask
    status: SubtaskStatus = SubtaskStatus.PENDING
    output: Any = None
    attempts: list[Attempt] = field(default_factory=list)
    route: RouteDecision | None = None
    error: str | None = None
    """Why it failed or was skipped."""
    sub_plan: Plan | None = None
    """The planner's decomposition, if the subtask was handed back to it."""
    children: Sequence[SubtaskResult] = ()
    """Results of the sub-plan's subtasks (a list once decomposed; empty otherwise, and
    then a shared empty tuple: a finished run keeps no empty list per subtask)."""
    restored: bool = False
    """True when the output came from the run journal of an earlier, interrupted run."""

    @property
    def tier_path(self) -> list[Tier]:
        """Tiers tried, in order (repeats mean retries)."""
        return [a.tier for a in self.attempts]

    @property
    def usage(self) -> Usage:
        """Tokens over every attempt, sub-plan included."""
        total = Usage()
        for a in self.attempts:
            total = total + a.usage
        for c in self.children:
            total = total + c.usage
        return total

    @property
    def cost(self) -> Decimal:
        """Dollars over every attempt, sub-plan included."""
        return sum((a.cost for a in self.attempts), Decimal(0)) + sum(
            (c.cost for c in self.children), Decimal(0)
        )

    @property
    def equivalent_cost(self) -> Decimal:
        """OpenAI-equivalent dollars over every attempt, sub-plan included."""
        return sum((a.equivalent_cost for a in self.attempts), Decimal(0)) + sum(
            (c.equivalent_cost for c in self.children), Decimal(0)
        )


@dataclass(slots=True, kw_only=True)
class RunResult:
    """Everything a run produced, partial or not."""

    run_id: str
    goal: str
    status: RunStatus
    plan: Plan | None
    subtasks: dict[str, SubtaskResult]
    final_answer: Any = None
    estimate: PlanEstimate | None = None
    """The plan's cost estimate before it ran (when a dollar budget or `plan_budget` is set)."""
    planner_attempts: list[Attempt] = field(default_factory=list)
    """The planner's own calls: planning the goal and composing the final answer."""
    error: str | None = None
    """Why the run stopped early (budget, deadline, cancellation), if it did."""
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    """Dollars at the models' own prices ($0 for local models)."""
    equivalent_cost: Decimal = Decimal(0)
    """What the same calls cost on the OpenAI tiers they stand in for."""
    counterfactual_cost: Decimal = Decimal(0)
    """What the same tokens would have cost had every call gone to the flagship."""
    by_tier: dict[Tier, TierTotals] = field(default_factory=dict)
    wall_time_s: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    """Tier name -> model name used."""

    @property
    def outputs(self) -> dict[str, Any]:
        """Outputs of the subtasks that succeeded, by id."""
        return {
            k: r.output for k, r in self.subtasks.items() if r.status is SubtaskStatus.SUCCEEDED
        }

    @property
    def savings(self) -> Decimal:
        """Share of the all-flagship cost saved (0..1)."""
        if not self.counterfactual_cost:
            return Decimal(0)
        return 1 - self.equivalent_cost / self.counterfactual_cost

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole result."""
        return _plain(self)  # type: ignore[no-any-return]

    def to_json(self, *, indent: int | None = 2) -> str:
        """The result as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def report(self) -> str:
        """A readable report: per subtask, then totals by tier and the counterfactual."""
        return render_report(self)


def _plain(value: Any) -> Any:
    if isinstance(value, PlanEstimate):
        return value.to_dict()
    if isinstance(value, SubtaskResult):
        d = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        d["tier_path"] = [t.value for t in value.tier_path]
        d["usage"] = _plain(value.usage)
        d["cost"] = str(value.cost)
        d["equivalent_cost"] = str(value.equivalent_cost)
        return d
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {
            (k.value if isinstance(k, enum.Enum) else str(k)): _plain(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return to_jsonable_python(value, fallback=str)


def _usd(value: Decimal) -> str:
    if value == 0:
        return "$0"
    return f"${value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"${value:,.4f}"


_NO_PRICE = "no price known"


def _cost(value: Decimal, unknown: bool) -> str:
    """Dollars, or "no price known" for $0 booked on a model nobody priced."""
    return _NO_PRICE if unknown and not value else _usd(value)


def _unpriced_tiers(result: RunResult) -> set[Tier]:
    return {t for t, tt in result.by_tier.items() if tt.unpriced_requests}


def _totals_line(result: RunResult) -> str:
    unpriced = sum(tt.unpriced_requests for tt in result.by_tier.values())
    if not unpriced:
        return (
            f"total: {_usd(result.cost)} charged, {_usd(result.equivalent_cost)} at OpenAI "
            f"prices; all-flagship would have cost {_usd(result.counterfactual_cost)} "
            f"({float(result.savings) * 100:.0f}% saved)"
        )
    calls = result.usage.requests
    counterfactual = result.counterfactual_cost
    # the flagship went unpriced if its calls did, or if real tokens came to $0 there
    flagship_unknown = Tier.FLAGSHIP in _unpriced_tiers(result) or (
        not counterfactual and result.usage.total_tokens > 0
    )
    rest = (
        f"no price known for any of the {calls} calls"
        if unpriced >= calls
        else f"no price known for {unpriced} of {calls} calls, "
        f"{_usd(result.equivalent_cost)} at OpenAI prices for the other {calls - unpriced}"
    )
    return (
        f"total: {rest}; all-flagship: {_cost(counterfactual, flagship_unknown)}; savings "
        "unknown. To price a self-hosted model, name the OpenAI model it stands in for: "
        "--models 'nano=NAME@gpt-5.4-nano,...'"
    )


def _tokens(u: Usage) -> str:
    cached = f" ({u.cached_input_tokens:,} cached)" if u.cached_input_tokens else ""
    return f"{u.input_tokens:,} in{cached} / {u.output_tokens:,} out"


def _rows(
    results: dict[str, SubtaskResult], unpriced: set[Tier], indent: str = ""
) -> list[list[str]]:
    rows = []
    for sid, r in results.items():
        path = " > ".join(t.value for t in r.tier_path) or "-"
        if r.sub_plan is not None:
            path += " > planner"
        outcome = r.status.value + (" (from journal)" if r.restored else "")
        if r.error and r.status is not SubtaskStatus.SUCCEEDED:
            outcome += f": {r.error[:60]}"
        rows.append(
            [
                indent + sid,
                r.subtask.agent,
                path,
                outcome,
                _tokens(r.usage),
                _cost(r.equivalent_cost, bool(unpriced.intersection(r.tier_path))),
            ]
        )
        if r.children:
            rows.extend(_rows({c.subtask.id: c for c in r.children}, unpriced, indent + "  "))
    return rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out.extend(fmt.format(*row) for row in rows)
    return out


def render_report(result: RunResult) -> str:
    """The text report `RunResult.report()` returns."""
    lines = [f"run {result.run_id}: {result.status.value} in {result.wall_time_s:.1f}s"]
    lines.append(f"goal: {result.goal}")
    if result.error:
        lines.append(f"stopped: {result.error}")
    lines.append("")
    rows = _rows(result.subtasks, _unpriced_tiers(result))
    if result.planner_attempts:
        usage = Usage()
        for a in result.planner_attempts:
            usage = usage + a.usage
        equivalent = sum((a.equivalent_cost for a in result.planner_attempts), Decimal(0))
        what = " + ".join(
            a.reason + (" (rejected)" if a.outcome == "answer_rejected" else "")
            for a in result.planner_attempts
        )
        rows.append(["(planner)", "planner", what, "-", _tokens(usage), _usd(equivalent)])
    lines.extend(_table(["subtask", "agent", "tiers", "outcome", "tokens", "cost"], rows))
    lines.append("")
    tier_rows = [
        [
            t.value,
            result.models.get(t.value, ""),
            str(tt.usage.requests),
            _tokens(tt.usage),
            _cost(tt.cost, tt.unpriced_requests > 0),
            _cost(tt.equivalent_cost, tt.unpriced_requests > 0),
        ]
        for t, tt in result.by_tier.items()
    ]
    lines.extend(
        _table(["tier", "model", "calls", "tokens", "cost", "OpenAI-equivalent"], tier_rows)
    )
    lines.append("")
    lines.append(_totals_line(result))
    if result.estimate is not None:
        est = result.estimate
        tiers = ", ".join(f"{t.value} {_usd(v)}" for t, v in est.by_tier().items())
        line = f"plan estimate before it ran: {_usd(est.usd)} ({tiers})"
        if est.budget_usd is not None:
            line += f" against a budget of {_usd(est.budget_usd)}"
        if est.downgraded:
            line += "; routed down to fit: " + ", ".join(
                f"{k} {v}" for k, v in est.downgraded.items()
            )
        lines.append(line)
    if result.final_answer is not None:
        answer = result.final_answer
        text = answer if isinstance(answer, str) else json.dumps(_plain(answer), indent=2)
        lines.extend(["", "final answer:", text])
    return "\n".join(lines)
