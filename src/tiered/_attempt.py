"""The attempt runner: run a subtask once on one tier, verify, classify, and return the next step.

Each attempt returns a typed step instead of rewriting loop locals: `Succeeded`,
`Retry` or `EscalateTo` (each carrying the next `Try`), `Decompose`, `GiveUp`, or
`Stopped` (the budget ran out). The subtask driver loops over steps; every step can
be tested on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._effects import EffectLog
from tiered._errors import BudgetExceeded
from tiered._escalation import (
    Action,
    Failure,
    FailureKind,
    PolicyState,
    classify_failure,
    timeout_failure,
)
from tiered._ledger import Charge, collect_charges
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelRequest,
    ModelResponse,
    ToolResultMessage,
)
from tiered._plan import Subtask
from tiered._result import RunStatus, SubtaskResult
from tiered._routing import estimate_tokens
from tiered._run_state import RunState
from tiered._verify import run_check
from tiered.models import Model

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
    "estimate_input",
    "run_attempt",
    "subtask_context",
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
    pending_charges: list[Charge] = field(default_factory=list)
    """Charges made before the first attempt (a classifier router's call), booked with it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Try:
    """How to run the next attempt: where, why, and what it continues from."""

    tier: Tier
    reason: str
    context: str
    history: Sequence[Message] = ()
    followup: str | None = None


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


class _Rejected(Exception):
    """Internal: a verifier rejected the output."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Limited:
    """A model behind a per-model in-flight cap."""

    __slots__ = ("_limiter", "_model")

    def __init__(self, model: Model, limiter: anyio.CapacityLimiter) -> None:
        self._model, self._limiter = model, limiter

    @property
    def spec(self) -> Any:
        return self._model.spec

    async def request(self, request: ModelRequest) -> ModelResponse:
        async with self._limiter:
            return await self._model.request(request)

    async def aclose(self) -> None:
        await self._model.aclose()


def _close_tool_calls(messages: Sequence[Message], note: str) -> list[Message]:
    """History with every unanswered tool call answered, so a provider accepts it."""
    out = list(messages)
    answered = {m.tool_call_id for m in out if isinstance(m, ToolResultMessage)}
    for m in messages:
        if isinstance(m, AssistantMessage):
            out.extend(
                ToolResultMessage(tool_call_id=tc.id, name=tc.name, content=note)
                for tc in m.tool_calls
                if tc.id not in answered
            )
    return out


async def _execute(run: RunState, job: SubtaskJob, attempt: Try, model: Model) -> Any:
    """One agent run plus its verifier; raises what went wrong."""
    cfg = run.config
    res = await job.agent.run(
        job.typed_input,
        deps=run.deps,
        model=model,
        ledger=run.ledger,
        history=attempt.history,
        followup=attempt.followup,
        extra_tools=(cfg.escalate,) if job.agent.may_escalate else (),
        subtask_id=job.sid,
        context=attempt.context,
        dependencies=job.inputs,
        tool_observer=run.recorder.tools(job.sid, job.agent.name),
        effects=job.effects,
        on_delta=run.recorder.deltas(job.sid, job.agent.name, attempt.tier),
    )
    check = cfg.verify.get(job.agent.name)
    if check is not None:
        rejection = await run_check(
            check, job.subtask, res.output, models=run.ladder, ledger=run.ledger
        )
        if rejection:
            raise _Rejected(rejection)
    return res.output


async def run_attempt(run: RunState, job: SubtaskJob, attempt: Try) -> Step:
    """Run `attempt`, book it, and return the next step the policy chooses."""
    tier = attempt.tier
    model: Model = run.ladder[tier]
    limiter = run.model_limiter(model.spec.name)
    if limiter is not None:
        model = _Limited(model, limiter)
    await run.wait_for_room()
    started = time.perf_counter()
    error: BaseException | None = None
    output: Any = None
    timeout = run.config.limits.subtask_timeout
    timed_out = False
    with collect_charges() as charges:
        async with run.limiter:
            run.recorder.started_attempt(job.record, job.sid, tier)
            started = time.perf_counter()
            try:
                if timeout is None:
                    output = await _execute(run, job, attempt, model)
                else:
                    with anyio.move_on_after(timeout) as scope:
                        output = await _execute(run, job, attempt, model)
                    timed_out = scope.cancelled_caught
            except Exception as exc:
                error = exc
    booked = [*job.pending_charges, *charges]
    job.pending_charges.clear()

    def book(outcome: str, message: str | None) -> None:
        run.recorder.attempt(
            job.record,
            tier=tier,
            model=model.spec.name,
            reason=attempt.reason,
            started=started,
            outcome=outcome,
            error=message,
            charges=booked,
        )

    if timed_out:
        failure = timeout_failure(tier, timeout or 0)
    elif error is None:
        book("succeeded", None)
        _learn(run, job, tier, True)
        return Succeeded(tier, output)
    elif isinstance(error, BudgetExceeded):
        if booked:  # something was spent before the budget said no: that is an attempt
            book("budget_exceeded", str(error))
        lower = run.ladder.below(tier)
        if run.ledger.budget.on_exhausted == "downgrade" and lower is not None:
            why = f"downgraded from {tier.value}: its next call no longer fits the budget"
            return Retry(Try(tier=lower, reason=why, context=attempt.context))
        run.stop(RunStatus.BUDGET_EXCEEDED, str(error))
        return Stopped(str(error))
    elif isinstance(error, _Rejected):
        failure = Failure(kind=FailureKind.VERIFIER_REJECTED, message=error.reason, tier=tier)
    else:
        classified = classify_failure(error, tier)
        if classified is None:  # misuse or a bug in user code: end the run with it
            book("error", f"{type(error).__name__}: {error}")
            run.fail_fast(error)
            return GiveUp(f"{type(error).__name__}: {error}", "not a model failure")
        failure = classified
    book(failure.kind.value, failure.message)
    _learn(run, job, tier, False)
    return _next_step(run, job, attempt, failure, error)


def _learn(run: RunState, job: SubtaskJob, tier: Tier, succeeded: bool) -> None:
    stats = run.config.stats
    if stats is not None:
        stats.record(job.agent.name, tier, succeeded)


def _next_step(
    run: RunState, job: SubtaskJob, attempt: Try, failure: Failure, error: BaseException | None
) -> Step:
    cfg = run.config
    decision = cfg.policy.decide(
        failure,
        PolicyState(
            subtask=job.subtask,
            agent=job.agent,
            ladder=run.ladder,
            attempts=tuple(job.record.attempts),
            depth=job.depth,
            max_depth=cfg.limits.max_decompose_depth,
        ),
    )
    to_tier = decision.tier
    if decision.action in (Action.RETRY, Action.ESCALATE) and to_tier is not None:
        run.ladder.index(to_tier)  # a policy naming a tier off the ladder is misuse
    run.recorder.escalated(job.sid, failure, decision, to_tier)
    tier = failure.tier
    if decision.action is Action.RETRY and to_tier is not None:
        return Retry(Try(tier=to_tier, reason=f"retry: {decision.reason}", context=attempt.context))
    if decision.action is Action.ESCALATE and to_tier is not None:
        note = (
            f"A {tier.value}-tier model attempted this and stopped: "
            f"{failure.kind.value}: {failure.message[:500]}"
        )
        history = _close_tool_calls(getattr(error, "messages", ()), "escalated to a higher tier")
        reason = f"escalated from {tier.value}: {decision.reason}"
        if history:
            followup = (
                f"{note}\nYou are a stronger model taking over. Finish the task and give the "
                "final output."
            )
            nxt = replace(attempt, tier=to_tier, reason=reason, history=history, followup=followup)
        else:  # no transcript to continue (e.g. a verifier rejection): say why
            context = f"{attempt.context}\n\nAn earlier attempt failed. {note}"
            nxt = Try(tier=to_tier, reason=reason, context=context)
        return EscalateTo(nxt)
    if decision.action is Action.DECOMPOSE:
        return Decompose(failure)
    return GiveUp(
        f"{failure.kind.value}: {failure.message}",
        f"{decision.reason}; last error: {failure.message}",
    )


def subtask_context(subtask: Subtask, inputs: Mapping[str, Any], render: Any) -> str:
    """The task statement and dependency outputs that go before the agent's input."""
    text = f"Task: {subtask.instructions}"
    if inputs:
        text += "\n\nOutputs of the subtasks this one depends on:\n" + render(inputs)
    return text


def estimate_input(agent: Agent[Any, Any], context: str, subtask: Subtask) -> int:
    """A routing estimate of the first request's input tokens."""
    text = agent.instructions + context + json.dumps(subtask.arguments, default=str)
    tools = sum(estimate_tokens(json.dumps(t.definition().parameters)) for t in agent.tools)
    return estimate_tokens(text) + tools
