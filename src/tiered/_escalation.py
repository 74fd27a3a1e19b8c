"""Escalation: what to do when a subtask attempt fails, and the record of every attempt.

The default policy reads as a list of (predicate, action) rules, first match wins,
rather than an if-chain: retry transient errors on the same tier, wait out rate limits
instead of paying for a pricier tier, move up the ladder, hand plan-shaped or top-tier
failures to the planner, and give up at the end. Compose your own with
`DefaultPolicy(rules=[my_rule, *DefaultPolicy.default_rules()])`.

Misuse is not a failure to escalate: `classify_failure` returns None for a `UserError`
or an exception from user code that is not a model failure, and the run ends with it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field

from tiered._build import builder
from tiered._catalog import Tier
from tiered._context import RunContext
from tiered._errors import (
    AuthenticationFailed,
    EscalationRequested,
    MaxTurnsExceeded,
    ModelError,
    OutputInvalid,
    RateLimited,
    RunError,
)
from tiered._ledger import Charge
from tiered._messages import ToolResultMessage
from tiered._tool import Tool
from tiered._usage import Usage
from tiered.models import Ladder

if TYPE_CHECKING:
    from tiered._agent import Agent
    from tiered._plan import Subtask

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
    "timeout_failure",
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
    LOW_CONFIDENCE = "low_confidence"
    """The reply was less sure than the route's confidence gate (`RouteDecision.gate`)."""


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
    rate_limited: bool = False
    """True when the provider said slow down: wait on this tier, never pay for a pricier one."""
    error: BaseException | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One try at a subtask: where it ran, why, what it cost and how it ended.

    Usage and dollars are sums of the attempt's `charges`, exactly as the ledger
    recorded them call by call (so long-context rates apply per call, never to a sum).
    """

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
    charges: tuple[Charge, ...] = field(default=(), repr=False)
    """Every model call of this attempt as the ledger booked it."""

    @classmethod
    def from_charges(cls, charges: Sequence[Charge], **fields: Any) -> Attempt:
        """An attempt whose totals are the sums of `charges`."""
        cost = equivalent = Decimal(0)
        if len(charges) == 1:  # one call: share its Usage rather than keep an equal copy
            usage = charges[0].usage
            cost += charges[0].cost
            equivalent += charges[0].equivalent_cost
        else:
            usage = Usage()
            for c in charges:
                usage = usage + c.usage
                cost += c.cost
                equivalent += c.equivalent_cost
        if cls is Attempt and len(fields) == 7:  # every other field given: the fast build
            return _build_attempt(
                usage=usage, cost=cost, equivalent_cost=equivalent, charges=tuple(charges), **fields
            )
        return cls(
            usage=usage, cost=cost, equivalent_cost=equivalent, charges=tuple(charges), **fields
        )


_build_attempt = builder(Attempt)


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

    subtask: Subtask
    agent: Agent[Any, Any]
    ladder: Ladder
    """The run's rungs, cheapest first: 'one tier up' is `ladder.above(tier)`."""
    attempts: Sequence[Attempt]
    depth: int
    """How many decompositions deep this subtask sits (0 for the planner's own subtasks)."""
    max_depth: int


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
    name: str = ""
    """A short handle, so a composed list can be read and filtered by name."""
    explain: Callable[[Failure, PolicyState], str] | None = None
    """When set, the reason for this failure in place of `why` (e.g. with the numbers)."""


def _retries_on_tier(state: PolicyState, tier: Tier) -> int:
    return sum(1 for a in state.attempts if a.tier is tier) - 1


def _can_go_up(f: Failure, s: PolicyState) -> bool:
    return s.ladder.above(f.tier) is not None


def _can_decompose(f: Failure, s: PolicyState) -> bool:
    return s.depth < s.max_depth


class DefaultPolicy:
    """Retry transient errors, wait out rate limits, escalate a rung, decompose, give up.

    `rules` replaces the list (build on `DefaultPolicy.default_rules()`); `max_retries`
    is per tier for transient model errors and timeouts; `max_attempts` caps the
    subtask's attempts overall and always applies first.
    """

    def __init__(
        self, *, rules: Sequence[Rule] | None = None, max_retries: int = 1, max_attempts: int = 4
    ) -> None:
        if max_attempts < 1 or max_retries < 0:
            raise ValueError("max_attempts must be >= 1 and max_retries >= 0")
        self.max_retries = max_retries
        self.max_attempts = max_attempts
        chosen = self.default_rules(max_retries=max_retries) if rules is None else rules
        self.rules: tuple[Rule, ...] = tuple(chosen)

    @staticmethod
    def default_rules(*, max_retries: int = 1) -> list[Rule]:
        """The default rule list, first match wins; compose yours around it."""
        return [
            Rule(
                name="plan_shaped",
                when=lambda f, s: f.kind is FailureKind.PLAN_SHAPED and _can_decompose(f, s),
                action=Action.DECOMPOSE,
                why="the executor says the work is plan-shaped: the planner decomposes it",
            ),
            Rule(
                name="unsure",
                when=lambda f, s: f.kind is FailureKind.LOW_CONFIDENCE and _can_go_up(f, s),
                action=Action.ESCALATE,
                why="the calibration says replies this unsure are often wrong here and "
                "right one tier up: move one tier up",
            ),
            Rule(
                name="auth",
                when=lambda f, s: isinstance(f.error, AuthenticationFailed),
                action=Action.GIVE_UP,
                why="the provider refused the credentials: fix the API key",
            ),
            Rule(
                name="rate_limited",
                when=lambda f, s: f.rate_limited,
                action=Action.RETRY,
                why="rate limited: wait and retry on the same tier (never a pricier one)",
            ),
            Rule(
                name="transient",
                when=lambda f, s: (
                    (f.retryable or f.kind is FailureKind.TIMEOUT)
                    and _retries_on_tier(s, f.tier) < max_retries
                ),
                action=Action.RETRY,
                why="transient failure: retry on the same tier",
            ),
            Rule(name="escalate", when=_can_go_up, action=Action.ESCALATE, why="move one tier up"),
            Rule(
                name="decompose",
                when=_can_decompose,
                action=Action.DECOMPOSE,
                why="failed at the top tier: the planner decomposes it",
            ),
        ]

    def decide(self, failure: Failure, state: PolicyState) -> EscalationDecision:
        """First matching rule wins; no match (or the attempt cap) gives up."""
        if len(state.attempts) >= self.max_attempts:
            return EscalationDecision(
                action=Action.GIVE_UP,
                reason=f"{failure.kind.value}: reached {self.max_attempts} attempts",
            )
        for rule in self.rules:
            if rule.when(failure, state):
                tier: Tier | None = None
                if rule.action is Action.RETRY:
                    tier = failure.tier
                elif rule.action is Action.ESCALATE:
                    tier = state.ladder.above(failure.tier) or failure.tier
                why = rule.why if rule.explain is None else rule.explain(failure, state)
                return EscalationDecision(
                    action=rule.action, reason=f"{failure.kind.value}: {why}", tier=tier
                )
        return EscalationDecision(
            action=Action.GIVE_UP, reason=f"{failure.kind.value}: no further step allowed"
        )


def classify_failure(exc: BaseException, tier: Tier) -> Failure | None:
    """The attempt's exception as a `Failure` the policy can read, or None for misuse.

    Only run failures (model errors, invalid output, turns exhausted, escalation
    requests) are failures; a `UserError` or a bug in user code ends the run instead of
    being paid for again on a pricier tier.
    """
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
    if isinstance(exc, ModelError):
        return Failure(
            kind=FailureKind.MODEL_ERROR,
            message=msg,
            tier=tier,
            retryable=exc.retryable,
            rate_limited=isinstance(exc, RateLimited) or exc.rate_limited,
            error=exc,
        )
    if isinstance(exc, RunError):
        return Failure(kind=FailureKind.MODEL_ERROR, message=msg, tier=tier, error=exc)
    return None


def timeout_failure(tier: Tier, seconds: float) -> Failure:
    """The failure of an attempt that ran past the subtask time limit."""
    return Failure(
        kind=FailureKind.TIMEOUT, message=f"the attempt timed out after {seconds:g}s", tier=tier
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
