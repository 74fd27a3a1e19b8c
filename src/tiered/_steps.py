"""The attempt loop's vocabulary: the subtask being worked on, how to run the next
attempt (`Try`), and the typed steps an attempt returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._effects import EffectLog
from tiered._escalation import Failure
from tiered._ledger import Charge
from tiered._messages import Message
from tiered._plan import Subtask
from tiered._result import SubtaskResult

__all__ = (
    "Decompose",
    "EscalateTo",
    "GiveUp",
    "Retry",
    "Step",
    "Stopped",
    "SubtaskJob",
    "Succeeded",
    "Try",
)


@dataclass(slots=True, eq=False, kw_only=True)
class SubtaskJob:
    """One subtask being worked on: its record, agent, typed input and dependency outputs."""

    subtask: Subtask
    sid: str
    """The full id (a sub-plan's subtasks are prefixed with their parent's id)."""
    record: SubtaskResult
    agent: Agent[Any, Any]
    typed_input: Any
    inputs: Mapping[str, Any]
    depth: int
    identity: str = ""
    """Hash of what the output depends on (set when the run keeps a journal)."""
    effects: EffectLog | None = None
    """Idempotency keys for side-effecting tool calls (with a journal)."""
    pending_charges: Sequence[Charge] = ()
    """Charges made before the first attempt (a classifier router's call), booked with it."""


@dataclass(slots=True, kw_only=True)
class Try:
    """How to run the next attempt: where, why, and what it continues from."""

    tier: Tier
    reason: str
    context: str
    history: Sequence[Message] = ()
    followup: str | None = None
    after: Tier | None = None
    """The tier whose failure this attempt follows (escalation, retry with feedback);
    None for a first try or a transient retry. The stats keep such attempts apart."""
    gate: float | None = None
    """The route's confidence gate: a reply less sure than this goes one tier up."""


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The output passed validation and the verifier."""

    tier: Tier
    output: Any


@dataclass(frozen=True, slots=True)
class Retry:
    """Run again on the same tier."""

    next: Try


@dataclass(frozen=True, slots=True)
class EscalateTo:
    """Run again one rung up, carrying what the failed attempt learned."""

    next: Try


@dataclass(frozen=True, slots=True)
class Decompose:
    """Hand the subtask to the planner."""

    failure: Failure


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No further step: the subtask fails."""

    error: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The run stopped (budget): the subtask ends without more attempts."""

    reason: str


Step = Succeeded | Retry | EscalateTo | Decompose | GiveUp | Stopped
