"""The attempt runner: run a subtask once on one tier, verify, classify, and return the next step.

Each attempt returns a typed step (`_steps.py`) instead of rewriting loop locals:
`Succeeded`, `Retry` or `EscalateTo` (each carrying the next `Try`), `Decompose`,
`GiveUp`, or `Stopped` (the budget ran out). The subtask driver loops over steps; every
step can be tested on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import anyio

from tiered._agent import Agent
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
from tiered._result import RunStatus
from tiered._routing import estimate_tokens
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

__all__ = ("estimate_input", "run_attempt", "subtask_context")


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


def _agent_run(run: RunState, job: SubtaskJob, attempt: Try, model: Model) -> Any:
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


async def _execute(run: RunState, job: SubtaskJob, attempt: Try, model: Model) -> Any:
    """One agent run plus its verifier; raises what went wrong."""
    res = await _agent_run(run, job, attempt, model)
    await _verify(run, job, res.output)
    return res.output


async def _verify(run: RunState, job: SubtaskJob, output: Any) -> None:
    """Raise `_Rejected` when the agent's verifier turns `output` down."""
    check = run.config.verify.get(job.agent.name)
    if check is not None:
        rejection = await run_check(
            check, job.subtask, output, models=run.ladder, ledger=run.ledger
        )
        if rejection:
            raise _Rejected(rejection)


async def run_attempt(run: RunState, job: SubtaskJob, attempt: Try) -> Step:
    """Run `attempt`, book it, and return the next step the policy chooses."""
    tier = attempt.tier
    model: Model = run.ladder[tier]
    if run.config.limits.per_model is not None:
        limiter = run.model_limiter(model.spec.name)
        if limiter is not None:
            model = _Limited(model, limiter)
    if run.channel is not None:  # backpressure: wait while a stream's consumer is behind
        await run.channel.wait_for_room()
    error: BaseException | None = None
    output: Any = None
    timeout = run.config.limits.subtask_timeout
    timed_out = False
    slots = run.limiter
    with collect_charges() as charges:
        if not slots.take():  # a free slot is taken without an await
            await slots.wait()
        try:
            run.recorder.started_attempt(job.record, job.sid, tier)
            started = time.perf_counter()
            try:
                if timeout is None:
                    output = (await _agent_run(run, job, attempt, model)).output
                    if job.agent.name in run.config.verify:
                        await _verify(run, job, output)
                else:
                    with anyio.move_on_after(timeout) as scope:
                        output = await _execute(run, job, attempt, model)
                    timed_out = scope.cancelled_caught
            except Exception as exc:
                error = exc
        finally:
            slots.release()
    booked = [*job.pending_charges, *charges] if job.pending_charges else charges
    job.pending_charges = ()
    name = model.spec.name

    if timed_out:
        failure = timeout_failure(tier, timeout or 0)
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


def estimate_input(agent: Agent[Any, Any], context: str, subtask: Subtask) -> int:
    """A routing estimate of the first request's input tokens."""
    chars = len(agent.instructions) + len(context) + len(_ARGUMENTS.encode(subtask.arguments))
    return chars // 4 + 1 + _tool_tokens(agent.tools)  # `estimate_tokens` of the whole text
