"""Typed run events: the same facts as the structlog lines, for a live progress view."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from tiered._catalog import Tier
from tiered._plan import Plan
from tiered._usage import Usage

if TYPE_CHECKING:
    from tiered._result import RunResult

__all__ = (
    "PlanCreated",
    "RunEvent",
    "RunFinished",
    "RunStarted",
    "SubtaskEscalated",
    "SubtaskFailed",
    "SubtaskFinished",
    "SubtaskRouted",
    "SubtaskSkipped",
    "SubtaskStarted",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEvent:
    """Base of every event; `name` is also the structlog event name."""

    name: ClassVar[str] = "run.event"
    run_id: str
    elapsed_s: float
    """Seconds since the run started."""
    run_usage: Usage = field(default_factory=Usage)
    """The whole run's usage when the event happened."""
    run_equivalent_cost: Decimal = Decimal(0)
    """The whole run's OpenAI-equivalent dollars when the event happened."""

    def log_fields(self) -> dict[str, Any]:
        """Fields for the structlog line (large payloads left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("plan", "result", "run_usage", "run_equivalent_cost"):
                continue
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, Tier):
                value = value.value
            elif isinstance(value, Usage):
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(RunEvent):
    """A run began."""

    name: ClassVar[str] = "run.started"
    goal: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanCreated(RunEvent):
    """The planner produced a plan (or a sub-plan for `parent`)."""

    name: ClassVar[str] = "plan.created"
    plan: Plan
    subtasks: int
    parent: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskStarted(RunEvent):
    """A subtask's dependencies are done and it has a concurrency slot."""

    name: ClassVar[str] = "subtask.started"
    subtask_id: str
    agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskRouted(RunEvent):
    """The router chose the first tier."""

    name: ClassVar[str] = "subtask.routed"
    subtask_id: str
    tier: Tier
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskEscalated(RunEvent):
    """An attempt failed and the policy chose the next step."""

    name: ClassVar[str] = "subtask.escalated"
    subtask_id: str
    action: str
    from_tier: Tier
    to_tier: Tier | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskFinished(RunEvent):
    """A subtask produced a valid (and verified) output."""

    name: ClassVar[str] = "subtask.finished"
    subtask_id: str
    tier: Tier
    attempts: int
    usage: Usage
    cost: Decimal
    equivalent_cost: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskFailed(RunEvent):
    """A subtask failed after every step the policy allowed."""

    name: ClassVar[str] = "subtask.failed"
    subtask_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskSkipped(RunEvent):
    """A subtask did not run: a dependency failed, or the budget or deadline stopped work."""

    name: ClassVar[str] = "subtask.skipped"
    subtask_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(RunEvent):
    """The run ended; `result` holds everything, partial or not."""

    name: ClassVar[str] = "run.finished"
    status: str
    usage: Usage
    cost: Decimal
    equivalent_cost: Decimal
    counterfactual_cost: Decimal
    result: RunResult | None = field(default=None, repr=False)
