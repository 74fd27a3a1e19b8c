"""One subtask from start to end: dependencies and journal first, then route and the steps.

The driver (`drive_subtasks`, one per scheduler worker, taking subtasks from the
scheduler's queue) runs each attempt's agent run under a concurrency slot and hands what came
back to the attempt runner (`end_attempt`), looping over its typed steps until one ends
the subtask; `Decompose` hands it to the decomposer, which runs a sub-plan through the
scheduler it is given (so this module never imports the scheduler).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import anyio

from tiered._attempt import (
    Unsure,
    agent_call,
    attempt_model,
    checked_output,
    end_attempt,
    gated_output,
    subtask_context,
    verify_output,
)
from tiered._decompose import PlanRunner, decompose
from tiered._errors import BudgetExceeded
from tiered._estimate import estimate_input
from tiered._journal import subtask_identity
from tiered._ledger import collect_charges, task_box
from tiered._plan import Subtask, agent_input
from tiered._planner import render_outputs
from tiered._result import RunStatus, SubtaskResult, SubtaskStatus
from tiered._routing import (
    RouteDecision,
    Router,
    RouteRequest,
    RuleRouter,
    decide_with_limit,
    rule_key,
)
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

__all__ = ("SubtaskQueue", "drive_subtasks")


class SubtaskQueue(Protocol):
    """The subtasks a plan's workers take, as their dependencies finish (the scheduler's)."""

    def take(self) -> Subtask | None:
        """The next ready subtask, or None when none is ready now."""
        ...

    async def wait(self) -> bool:
        """Wait until a subtask may be ready (True) or the plan is done (False)."""
        ...

    def done(self, subtask: Subtask) -> None:
        """`subtask` ended (whatever its outcome): its dependents may become ready."""
        ...


async def drive_subtasks(
    run: RunState,
    queue: SubtaskQueue,
    results: Mapping[str, SubtaskResult],
    *,
    depth: int,
    prefix: str,
    run_plan: PlanRunner,
) -> None:
    """One worker: take each ready subtask from `queue` and run it (skip, restore from the
    journal, or drive its attempts) until the plan is done.

    The subtask's steps, and each attempt's agent run, are driven in this one frame, which
    lives as long as the worker: no coroutine is made per subtask, and a long-lived frame
    is not rescanned by the cyclic GC's young collections while the model answers."""
    box = task_box()  # this worker's attempts gather their charges here, one at a time
    limits, slots = run.config.limits, run.limiter
    while True:
        subtask = queue.take()
        if subtask is None:
            if await queue.wait():
                continue
            return
        try:
            if run.channel is not None:  # backpressure: a stream's consumer is behind
                await run.channel.wait_for_room()
            job = _open(run, subtask, results, depth, prefix)
            if job is None:
                continue
            try:
                first = _first_try(run, job)
                attempt = first if isinstance(first, Try) else await first
                kept: Succeeded | None = None  # an unsure reply, if the escalation fails
                while True:
                    if run.stop_reason is not None:
                        step: Step = Stopped(run.stop_reason)
                        break
                    model = attempt_model(run, attempt.tier)
                    if run.channel is not None:  # backpressure, as above
                        await run.channel.wait_for_room()
                    error: BaseException | None = None
                    output: Any = None
                    res: Any = None
                    timed_out = False
                    box.start()  # the attempt's charges: its calls, its tools' and verifier's
                    try:
                        if not slots.take():  # a free slot is taken without an await
                            await slots.wait()
                        try:
                            run.recorder.started_attempt(job.record, job.sid, attempt.tier)
                            started = time.perf_counter()
                            try:
                                if limits.subtask_timeout is None:
                                    res = await agent_call(run, job, attempt, model)
                                    if job.agent.name in run.config.verify:
                                        await verify_output(run, job, res.output)
                                    output = gated_output(attempt, res)
                                else:
                                    with anyio.move_on_after(limits.subtask_timeout) as scope:
                                        output = await checked_output(run, job, attempt, model)
                                    timed_out = scope.cancelled_caught
                            except Exception as exc:
                                error = exc
                        finally:
                            slots.release()
                    finally:
                        charges = box.stop()
                    step = end_attempt(
                        run, job, attempt, model, started, charges, output, error, timed_out
                    )
                    if isinstance(error, Unsure):
                        kept = Succeeded(attempt.tier, error.output)
                    error = res = None  # this frame outlives the attempt: hold no traceback
                    if not isinstance(step, Retry | EscalateTo):
                        break
                    attempt = step.next
                if isinstance(step, GiveUp) and kept is not None:
                    step = kept  # what the gate sent up failed above: the reply stands
                if isinstance(step, Decompose):
                    await decompose(run, job, step.failure, run_plan)
                else:
                    _end(run, job, step)
            except BudgetExceeded as exc:  # e.g. from a classifier router's model call
                run.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
                _end_stopped(run, job, str(exc))
            except Exception as exc:  # misuse or a bug in a hook (router, policy): end the run
                run.recorder.failed(job.record, job.sid, f"{type(exc).__name__}: {exc}")
                run.fail_fast(exc)
        finally:
            queue.done(subtask)


def _open(
    run: RunState,
    subtask: Subtask,
    results: Mapping[str, SubtaskResult],
    depth: int,
    prefix: str,
) -> SubtaskJob | None:
    """The subtask's job, or None when it ends before an attempt: skipped (a dependency
    failed, the run stopped) or restored from the journal."""
    record = results[subtask.id]
    sid = prefix + subtask.id
    recorder = run.recorder
    inputs: dict[str, Any] = {}
    if subtask.depends_on:
        bad = [d for d in subtask.depends_on if results[d].status is not SubtaskStatus.SUCCEEDED]
        if bad:
            why = "; ".join(f"{d} {results[d].status.value}" for d in bad)
            recorder.skipped(record, sid, f"dependency did not succeed: {why}")
            return None
    agent = run.config.executors[subtask.agent]
    if subtask.depends_on and agent.uses_dependencies:
        inputs = {d: results[d].output for d in subtask.depends_on}
    if run.stop_reason is not None:
        recorder.skipped(record, sid, run.stop_reason)
        return None
    identity, effects = "", None
    if run.journal is not None:
        identity = subtask_identity(subtask, inputs)
        found, output = run.journal.restore(sid, identity, agent.output_type)
        if found:
            record.attempts = run.journal.attempts(sid)
            recorder.succeeded(record, sid, agent.tier, output, restored=True)
            return None
        effects = run.journal.effects_for(sid, identity)
        record.attempts = run.journal.attempts(sid)  # a session cut it off: they still count
    return SubtaskJob(
        subtask=subtask,
        sid=sid,
        record=record,
        agent=agent,
        typed_input=agent_input(agent, subtask.arguments),
        inputs=inputs,
        depth=depth,
        identity=identity,
        effects=effects,
    )


def _end_stopped(run: RunState, job: SubtaskJob, reason: str) -> None:
    if job.record.attempts:
        run.recorder.failed(job.record, job.sid, reason)
    else:
        run.recorder.skipped(job.record, job.sid, reason)


def _first_try(run: RunState, job: SubtaskJob) -> Try | Awaitable[Try]:
    """The first attempt, routed: a `Try` at once for the rule router (no model call, so
    no await and no charge collection), else an awaitable of it."""
    context = subtask_context(job.subtask, job.inputs, render_outputs)
    tokens = estimate_input(job.agent, context, job.subtask)
    router = run.config.router
    if type(router) is not RuleRouter:
        return _classified(run, job, router, _request(run, job, tokens), context)
    # The rules read the estimate only through thresholds: a decision made once holds for
    # every subtask alike (same agent, hint, stakes) whose estimate is under its limit.
    key = rule_key(job.subtask, job.agent)
    known = run.routes.get(key)
    if known is not None and tokens < known[1]:
        run.recorder.routed(job.record, job.sid, known[0])
        return Try(tier=known[0].tier, reason=known[2], context=context)
    decision, limit = decide_with_limit(router, _request(run, job, tokens))
    first = _routed(run, job, decision, context)
    if tokens < limit:
        run.routes[key] = (run.decisions[decision], limit, first.reason)
    return first


def _request(run: RunState, job: SubtaskJob, tokens: int) -> RouteRequest:
    return RouteRequest(
        subtask=job.subtask, agent=job.agent, estimated_input_tokens=tokens, ladder=run.ladder
    )


async def _classified(
    run: RunState, job: SubtaskJob, router: Router, request: RouteRequest, context: str
) -> Try:
    with collect_charges() as charges:  # a classifier router's calls belong to the subtask
        decision = await router.route(request, models=run.ladder, ledger=run.ledger)
    job.pending_charges = [*job.pending_charges, *charges]
    return _routed(run, job, decision, context)


def _routed(run: RunState, job: SubtaskJob, decision: RouteDecision, context: str) -> Try:
    run.ladder.index(decision.tier)  # a route off the ladder is a UserError
    # equal decisions are shared: one object kept per distinct route, not per subtask
    decision = run.decisions.setdefault(decision, decision)
    run.recorder.routed(job.record, job.sid, decision)
    return Try(
        tier=decision.tier,
        reason=f"routed: {decision.reason}",
        context=context,
        gate=decision.gate if run.ladder.above(decision.tier) is not None else None,
    )


def _end(run: RunState, job: SubtaskJob, step: Step) -> None:
    recorder = run.recorder
    if isinstance(step, Succeeded):
        recorder.succeeded(job.record, job.sid, step.tier, step.output, identity=job.identity)
    elif isinstance(step, Stopped):
        _end_stopped(run, job, step.reason)
    elif isinstance(step, GiveUp):
        recorder.failed(job.record, job.sid, step.error, reason=step.reason)
