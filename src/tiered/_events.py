"""Typed run events: the same facts as the structlog lines, for a live view or a product.

Every event has `to_dict()`, a JSON-safe dict (Decimals as strings, usage, the plan,
outputs) with its `name`, so a service can forward the stream as it is (see
`examples/embed_service.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from tiered._catalog import Tier
from tiered._plan import Plan
from tiered._usage import Usage

if TYPE_CHECKING:
    from tiered._result import RunResult

__all__ = (
    "ComposeFinished",
    "ComposeStarted",
    "ModelDelta",
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
    "ToolCalled",
    "ToolReturned",
)

_LOG_SKIP = frozenset({"plan", "result", "run_usage", "run_equivalent_cost", "output"})


def _jsonable(value: Any) -> Any:
    """One field as JSON-safe data."""
    if value is None or isinstance(value, bool | int | float | str):
        return value.value if isinstance(value, Tier) else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Usage):
        return dataclasses.asdict(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return to_jsonable_python(value, fallback=str)


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
        return {
            f.name: _jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in _LOG_SKIP
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole event as JSON-safe data, `name` first."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(RunEvent):
    """A run began."""

    name: ClassVar[str] = "run.started"
    goal: str
    budget_usd: Decimal | None = None
    """The run's dollar budget, if it has one."""


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
    tier: Tier


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskRouted(RunEvent):
    """The router chose the first tier."""

    name: ClassVar[str] = "subtask.routed"
    subtask_id: str
    agent: str
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
    failure: str
    """The failure kind that led here (e.g. 'verifier_rejected')."""
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskFinished(RunEvent):
    """A subtask produced a valid (and verified) output."""

    name: ClassVar[str] = "subtask.finished"
    subtask_id: str
    agent: str
    tier: Tier
    attempts: int
    usage: Usage
    cost: Decimal
    equivalent_cost: Decimal
    output: Any = None
    """The subtask's typed output."""
    restored: bool = False
    """True when the output came from the journal of an earlier run."""


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
class ToolCalled(RunEvent):
    """An executor called a tool."""

    name: ClassVar[str] = "tool.called"
    subtask_id: str | None
    agent: str
    tool: str
    call_id: str
    arguments: str
    """The arguments as the model sent them (JSON text)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolReturned(RunEvent):
    """A tool call finished; `is_error` when the model was told it failed."""

    name: ClassVar[str] = "tool.returned"
    subtask_id: str | None
    agent: str
    tool: str
    call_id: str
    is_error: bool
    duration_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDelta(RunEvent):
    """Text a model is streaming (the planner while it plans, or an executor)."""

    name: ClassVar[str] = "model.delta"
    subtask_id: str | None
    agent: str
    tier: Tier
    text: str
    output_tokens: int = 0
    """Output tokens of this call so far (estimated while streaming)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ComposeStarted(RunEvent):
    """The planner began writing the final answer."""

    name: ClassVar[str] = "compose.started"


@dataclass(frozen=True, slots=True, kw_only=True)
class ComposeFinished(RunEvent):
    """The final answer is written (or failed, with `error`)."""

    name: ClassVar[str] = "compose.finished"
    error: str | None = None


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
