"""The attempt runner: run a subtask once on one tier, verify, classify, and return the next step.

Each attempt returns a typed step (`_steps.py`) instead of rewriting loop locals:
`Succeeded`, `Retry` or `EscalateTo` (each carrying the next `Try`), `Decompose`,
`GiveUp`, or `Stopped` (the budget ran out). The subtask driver awaits the attempt's
agent run itself (`agent_call`, under a slot) and hands what came back to `end_attempt`,
which books it and picks the step: no frame of the runner waits with every in-flight
model call. Every step can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import anyio

from tiered._agent import AgentResult
from tiered._catalog import Tier
from tiered._errors import BudgetExceeded
from tiered._escalation import (
    Action,
    Failure,
    FailureKind,
    PolicyState,
    classify_failure,
    timeout_failure,
)
from tiered._ledger import Charge
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelRequest,
    ModelResponse,
    ToolResultMessage,
)
from tiered._plan import Subtask
from tiered._result import RunStatus
from tiered._run_state import RunState
from tiered._steps import (
    Decompose,
    EscalateTo,
    GiveUp,
    Retry,
    Step,
    Stopped,
    SubtaskJob,
    Succeeded,
    Try,
)
from tiered._verify import run_check
from tiered.models import Model

__all__ = (
    "agent_call",
    "attempt_model",
    "checked_output",
    "end_attempt",
    "subtask_context",
    "verify_output",
)


class _Rejected(Exception):
    """Internal: a verifier rejected the output."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Unsure(Exception):
    """The reply was less sure than the route's confidence gate; `output` is kept."""

    def __init__(self, reason: str, output: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output


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


def agent_call(run: RunState, job: SubtaskJob, attempt: Try, model: Model) -> Any:
    """The attempt's agent run, as a coroutine for the caller to await (no frame of its own
    stays on the stack while the model answers: it counts in every in-flight subtask)."""
    agent = job.agent
    return agent.run(
        job.typed_input,
        deps=run.deps,
        model=model,
        ledger=run.ledger,
        history=attempt.history,
        followup=attempt.followup,
        # an agent told to answer at once cannot call escalate on its first turn, and the
        # tool's text alone made the 0.5B misread tickets (6 of 16 right with it, 16 without)
        extra_tools=run.escalate_tools
        if agent.may_escalate and agent.tool_choice != "none"
        else (),
        subtask_id=job.sid,
        context=attempt.context,
        dependencies=job.inputs,
        tool_observer=run.recorder.tools(job.sid, agent.name) if run.recorder.listening else None,
        effects=job.effects,
        on_delta=run.recorder.deltas(job.sid, agent.name, attempt.tier)
        if run.recorder.model_deltas
        else None,
    )


async def checked_output(run: RunState, job: SubtaskJob, attempt: Try, model: Model) -> Any:
    """One agent run plus its verifier (as one awaitable, for a timeout around both)."""
    res = await agent_call(run, job, attempt, model)
    await verify_output(run, job, res.output)
    return gated_output(attempt, res)  # only a reply that passed every check is kept


def gated_output(attempt: Try, result: AgentResult[Any]) -> Any:
    """`result.output`, or `Unsure` raised when the attempt has a confidence gate and the
    run was less sure than it (a run that reports no confidence is kept). Called after the
    verifier: the reply an `Unsure` keeps, for when the tier above fails, passed it."""
    gate, confidence = attempt.gate, result.confidence
    if gate is not None and confidence is not None and confidence < gate:
        raise Unsure(
            f"{result.model} was unsure of its reply (confidence {confidence:.2f}, under the "
            f"gate {gate:.2f} the calibration set for this agent on {attempt.tier.value}): "
            "sent one tier up",
            output=result.output,
        )
    return result.output


async def verify_output(run: RunState, job: SubtaskJob, output: Any) -> None:
    """Raise `_Rejected` when the agent's verifier turns `output` down."""
    check = run.config.verify.get(job.agent.name)
    if check is not None:
        rejection = await run_check(
            check, job.subtask, output, models=run.ladder, ledger=run.ledger
        )
        if rejection:
            raise _Rejected(rejection)


def attempt_model(run: RunState, tier: Tier) -> Model:
    """The model an attempt on `tier` runs on: behind its per-model in-flight cap, if any."""
    model: Model = run.ladder[tier]
    if run.config.limits.per_model is not None:
        limiter = run.model_limiter(model.spec.name)
        if limiter is not None:
            model = _Limited(model, limiter)
    return model


def end_attempt(
    run: RunState,
    job: SubtaskJob,
    attempt: Try,
    model: Model,
    started: float,
    charges: list[Charge],
    output: Any,
    error: BaseException | None,
    timed_out: bool,
) -> Step:
    """Book the attempt that just ended (`output`, or what it raised, or a timeout) and
    return the next step the policy chooses. The subtask driver runs the attempt itself
    (`agent_call`, `verify_output` or `checked_output`, under a slot), so no coroutine of
    the attempt runner stays on the stack while the model answers."""
    tier = attempt.tier
    booked = [*job.pending_charges, *charges] if job.pending_charges else charges
    job.pending_charges = ()
    name = model.spec.name

    if timed_out:
        failure = timeout_failure(tier, run.config.limits.subtask_timeout or 0)
    elif error is None:
        _book(run, job, attempt, name, started, booked, "succeeded", None)
        if run.config.stats is not None:
            _learn(run, job, attempt, True, booked)
        return Succeeded(tier, output)
    elif isinstance(error, BudgetExceeded):
        if booked:  # something was spent before the budget said no: that is an attempt
            _book(run, job, attempt, name, started, booked, "budget_exceeded", str(error))
        lower = run.ladder.below(tier)
        if run.ledger.budget.on_exhausted == "downgrade" and lower is not None:
            why = f"downgraded from {tier.value}: its next call no longer fits the budget"
            return Retry(Try(tier=lower, reason=why, context=attempt.context))
        run.stop(RunStatus.BUDGET_EXCEEDED, str(error))
        return Stopped(str(error))
    elif isinstance(error, _Rejected):
        failure = Failure(kind=FailureKind.VERIFIER_REJECTED, message=error.reason, tier=tier)
    elif isinstance(error, Unsure):  # not known to be wrong: nothing to learn from it
        failure = Failure(kind=FailureKind.LOW_CONFIDENCE, message=error.reason, tier=tier)
        _book(run, job, attempt, name, started, booked, failure.kind.value, failure.message)
        return _next_step(run, job, attempt, failure, error)
    else:
        classified = classify_failure(error, tier)
        if classified is None:  # misuse or a bug in user code: end the run with it
            _book(
                run,
                job,
                attempt,
                name,
                started,
                booked,
                "error",
                f"{type(error).__name__}: {error}",
            )
            run.fail_fast(error)
            return GiveUp(f"{type(error).__name__}: {error}", "not a model failure")
        failure = classified
    _book(run, job, attempt, name, started, booked, failure.kind.value, failure.message)
    if not _transient(failure):  # a provider hiccup says nothing about what the tier can do
        _learn(run, job, attempt, False, booked)
    return _next_step(run, job, attempt, failure, error)


def _transient(failure: Failure) -> bool:
    return failure.retryable or failure.rate_limited


def _book(
    run: RunState,
    job: SubtaskJob,
    attempt: Try,
    model: str,
    started: float,
    booked: Sequence[Charge],
    outcome: str,
    message: str | None,
) -> None:
    run.recorder.attempt(
        job.record,
        sid=job.sid,
        tier=attempt.tier,
        model=model,
        reason=attempt.reason,
        started=started,
        outcome=outcome,
        error=message,
        charges=booked,
    )


def _learn(
    run: RunState, job: SubtaskJob, attempt: Try, succeeded: bool, booked: list[Charge]
) -> None:
    stats = run.config.stats
    if stats is not None:
        cost = sum((c.cost for c in booked), Decimal(0))
        category = job.subtask.category
        stats.record(
            job.agent.name, attempt.tier, succeeded, category, after=attempt.after, cost=cost
        )


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
        reason = f"retry: {decision.reason}"
        if _transient(failure) or failure.kind in (FailureKind.TIMEOUT, FailureKind.MODEL_ERROR):
            return Retry(
                Try(tier=to_tier, reason=reason, context=attempt.context, after=attempt.after)
            )
        feedback = (  # the output itself was wrong: say what, so the retry can differ
            f"{attempt.context}\n\nAn earlier attempt at this task failed: "
            f"{failure.kind.value}: {failure.message[:500]}\nDo not repeat that mistake."
        )
        return Retry(Try(tier=to_tier, reason=reason, context=feedback, after=failure.tier))
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
        return EscalateTo(replace(nxt, after=tier))
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
