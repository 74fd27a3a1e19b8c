"""Escalation: what to do when a subtask attempt fails, and the record of every attempt.

The default policy reads as a list of (predicate, action) rules, first match wins,
rather than an if-chain: retry transient errors on the same tier, move up a tier,
hand plan-shaped or top-tier failures to the planner, and give up at the end.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, Field

from tiered._catalog import Tier
from tiered._context import RunContext
from tiered._errors import (
    EscalationRequested,
    MaxTurnsExceeded,
    ModelError,
    OutputInvalid,
    TieredError,
)
from tiered._messages import ToolResultMessage
from tiered._tool import Tool
from tiered._usage import Usage

__all__ = (
    "Action",
    "Attempt",
    "DefaultPolicy",
    "Escalate",
    "EscalationDecision",
    "EscalationPolicy",
    "Failure",
    "FailureKind",
    "PolicyState",
    "Rule",
    "classify_failure",
)


class FailureKind(enum.StrEnum):
    """Why an attempt failed."""

    MODEL_ERROR = "model_error"
    """The provider call failed after its retries."""
    OUTPUT_INVALID = "output_invalid"
    """Output still invalid after the repair turns."""
    TOOL_FAILURE = "tool_failure"
    """The turns ran out while tools kept failing."""
    MAX_TURNS = "max_turns"
    """The turns ran out."""
    VERIFIER_REJECTED = "verifier_rejected"
    """A verifier (Python check or agent) rejected the output."""
    TIMEOUT = "timeout"
    """The attempt exceeded the subtask time limit."""
    ESCALATION_REQUESTED = "escalation_requested"
    """The executor called `escalate`: beyond its tier."""
    PLAN_SHAPED = "plan_shaped"
    """The executor called `escalate` saying the work needs decomposing."""


class Action(enum.StrEnum):
    """What to do after a failed attempt."""

    RETRY = "retry"
    ESCALATE = "escalate"
    DECOMPOSE = "decompose"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One failed attempt as the policy sees it."""

    kind: FailureKind
    message: str
    tier: Tier
    retryable: bool = False
    """True for transient provider errors (rate limit, timeout, 5xx)."""
    error: BaseException | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One try at a subtask: where it ran, why, what it cost and how it ended."""

    number: int
    tier: Tier
    model: str
    reason: str
    """Why this attempt ran on this tier (the route, or the escalation that led here)."""
    usage: Usage
    cost: Decimal
    equivalent_cost: Decimal
    duration_s: float
    outcome: str
    """'succeeded', or the failure kind."""
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationDecision:
    """The policy's answer, with its reason."""

    action: Action
    reason: str
    tier: Tier | None = None
    """The tier of the next attempt, for RETRY and ESCALATE."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyState:
    """What the policy knows about the subtask so far."""

    attempts: Sequence[Attempt]
    depth: int
    """How many decompositions deep this subtask sits (0 for the planner's own subtasks)."""
    max_depth: int
    top_tier: Tier


class EscalationPolicy(Protocol):
    """Decides the next step after a failed attempt."""

    def decide(self, failure: Failure, state: PolicyState) -> EscalationDecision:
        """Return the action to take, with its reason."""
        ...


Predicate = Callable[[Failure, PolicyState], bool]
"""A condition on a failure; rules pair one with an action."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """When `when` holds, take `action`; `why` explains it in the attempt record."""

    when: Predicate
    action: Action
    why: str


def _retries_on_tier(state: PolicyState, tier: Tier) -> int:
    return sum(1 for a in state.attempts if a.tier is tier) - 1


class DefaultPolicy:
    """Retry transient errors, escalate a tier, decompose at the top, then give up.

    `max_retries` is per tier and only for transient model errors and timeouts;
    `max_attempts` caps the subtask's attempts overall.
    """

    def __init__(self, *, max_retries: int = 1, max_attempts: int = 4) -> None:
        self.max_retries = max_retries
        self.max_attempts = max_attempts
        can_go_up: Predicate = lambda f, s: f.tier.up() is not None  # noqa: E731
        can_decompose: Predicate = lambda f, s: s.depth < s.max_depth  # noqa: E731
        self.rules: list[Rule] = [
            Rule(
                when=lambda f, s: len(s.attempts) >= self.max_attempts,
                action=Action.GIVE_UP,
                why=f"reached {max_attempts} attempts",
            ),
            Rule(
                when=lambda f, s: f.kind is FailureKind.PLAN_SHAPED and can_decompose(f, s),
                action=Action.DECOMPOSE,
                why="the executor says the work is plan-shaped: the planner decomposes it",
            ),
            Rule(
                when=lambda f, s: (
                    (f.retryable or f.kind is FailureKind.TIMEOUT)
                    and _retries_on_tier(s, f.tier) < self.max_retries
                ),
                action=Action.RETRY,
                why="transient failure: retry on the same tier",
            ),
            Rule(when=can_go_up, action=Action.ESCALATE, why="move one tier up"),
            Rule(
                when=can_decompose,
                action=Action.DECOMPOSE,
                why="failed at the top tier: the planner decomposes it",
            ),
        ]

    def decide(self, failure: Failure, state: PolicyState) -> EscalationDecision:
        """First matching rule wins; no match gives up."""
        for rule in self.rules:
            if rule.when(failure, state):
                tier = failure.tier
                if rule.action is Action.ESCALATE:
                    tier = failure.tier.up() or failure.tier
                return EscalationDecision(
                    action=rule.action,
                    reason=f"{failure.kind.value}: {rule.why}",
                    tier=tier if rule.action in (Action.RETRY, Action.ESCALATE) else None,
                )
        return EscalationDecision(
            action=Action.GIVE_UP, reason=f"{failure.kind.value}: no further step allowed"
        )


def classify_failure(exc: BaseException, tier: Tier) -> Failure:
    """Turn an attempt's exception into a `Failure` the policy can read."""
    msg = str(exc)
    if isinstance(exc, EscalationRequested):
        kind = FailureKind.PLAN_SHAPED if exc.plan_shaped else FailureKind.ESCALATION_REQUESTED
        return Failure(kind=kind, message=exc.reason, tier=tier, error=exc)
    if isinstance(exc, OutputInvalid):
        return Failure(kind=FailureKind.OUTPUT_INVALID, message=msg, tier=tier, error=exc)
    if isinstance(exc, MaxTurnsExceeded):
        tool_errors = [m for m in exc.messages if isinstance(m, ToolResultMessage) and m.is_error]
        kind = FailureKind.TOOL_FAILURE if tool_errors else FailureKind.MAX_TURNS
        if tool_errors:
            msg = f"{msg}; last tool error: {tool_errors[-1].content}"
        return Failure(kind=kind, message=msg, tier=tier, error=exc)
    if isinstance(exc, TimeoutError):
        return Failure(kind=FailureKind.TIMEOUT, message="the attempt timed out", tier=tier)
    if isinstance(exc, ModelError):
        return Failure(
            kind=FailureKind.MODEL_ERROR,
            message=msg,
            tier=tier,
            retryable=exc.retryable,
            error=exc,
        )
    if isinstance(exc, TieredError):
        return Failure(kind=FailureKind.MODEL_ERROR, message=msg, tier=tier, error=exc)
    return Failure(
        kind=FailureKind.MODEL_ERROR, message=f"{type(exc).__name__}: {msg}", tier=tier, error=exc
    )


class Escalate(Tool):
    """Call this when the task is beyond you, or needs to be split into a plan first.

    Give a short reason. Set plan_shaped to true when the task needs choosing a strategy
    or decomposing into steps rather than a single answer.
    """

    name = "escalate"
    timeout = None

    class Args(BaseModel):
        reason: str = Field(description="Why you cannot finish this task well.")
        plan_shaped: bool = Field(
            default=False, description="True if the task should be decomposed into steps."
        )

    async def run(self, args: Any, ctx: RunContext[Any]) -> Any:
        """Stop this attempt and hand the subtask to the escalation policy."""
        raise EscalationRequested(args.reason, plan_shaped=args.plan_shaped)
