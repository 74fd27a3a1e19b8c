"""One run, phase by phase: start, plan, execute (the scheduler), compose, check, finish.

Partial failure keeps results; a budget hit or deadline stops new work and keeps every
finished output; misuse (a `UserError`, a bug in user code) ends the run with that
error, after the result so far is recorded on it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

import anyio

from tiered._catalog import ModelSpec, default_catalog
from tiered._errors import BudgetExceeded, PlanInvalid, TieredError, UserError
from tiered._escalation import Attempt
from tiered._estimate import fit_plan
from tiered._events import ComposeFinished, ComposeStarted, PlanCreated, RunEvent, RunStarted
from tiered._journal import FINAL_ANSWER, Journal, answer_identity
from tiered._ledger import Budget, Ledger, collect_charges
from tiered._plan import Plan, check_plan
from tiered._recorder import RunRecorder
from tiered._result import RunResult, RunStatus, SubtaskStatus
from tiered._run_state import RunConfig, RunState, Slots
from tiered._scheduler import run_plan
from tiered._stream import EventChannel
from tiered.models import Ladder

__all__ = ("execute_run",)


def _flagship_spec(ladder: Ladder, flagship: ModelSpec | None) -> ModelSpec:
    """The counterfactual's model: given, else what the top rung stands in for."""
    if flagship is not None:
        return flagship
    catalog = default_catalog()
    spec = ladder[ladder.top].spec
    if spec.equivalent and spec.equivalent in catalog:
        return catalog[spec.equivalent]
    return spec


def _check_ladder(config: RunConfig, ladder: Ladder) -> None:
    """Every tier the run will start on must be on the ladder: a `UserError` up front."""
    for agent in config.executors.values():
        if agent.model is None and agent.tier not in ladder:
            ladder.index(agent.tier)
    if config.planner.model is None and config.planner.tier_on(ladder) not in ladder:
        ladder.index(config.planner.tier_on(ladder))


def _planner_attempt(charges: list[Any], planner_tier: Any, model: str, what: str) -> Attempt:
    return Attempt.from_charges(
        charges,
        number=0,
        tier=planner_tier,
        model=model,
        reason=what,
        duration_s=0.0,
        outcome=what,
    )


async def execute_run(
    config: RunConfig,
    goal: str,
    *,
    ladder: Ladder,
    budget: Budget,
    flagship: ModelSpec | None,
    deps: Any,
    plan: Plan | None,
    output_type: Any,
    compose: bool,
    sink: Callable[[RunEvent], Any] | None,
    channel: EventChannel | None,
    journal: str | os.PathLike[str] | Journal | None,
    model_deltas: bool = False,
) -> RunResult:
    """Run `goal` to a `RunResult` (see `Orchestrator.run`)."""
    _check_ladder(config, ladder)
    run_id = uuid.uuid4().hex[:12]
    ledger = Ledger(budget, flagship=_flagship_spec(ladder, flagship))
    ledger.require_prices(m.spec for m in ladder.values())  # before anything is spent
    the_journal = None
    if journal is not None:
        the_journal = journal if isinstance(journal, Journal) else Journal(journal)
        the_journal.begin(goal, run_id)
        if plan is None:
            plan = the_journal.plan
        ledger.restore(the_journal.charges())  # what earlier sessions spent counts again
        ledger.listener = the_journal.record_charge
    recorder = RunRecorder(
        run_id=run_id, ledger=ledger, sink=sink, journal=the_journal, model_deltas=model_deltas
    )
    run = RunState(
        config=config,
        goal=goal,
        deps=deps,
        ladder=ladder,
        ledger=ledger,
        recorder=recorder,
        limiter=Slots(config.limits.concurrency),
        channel=channel,
        journal=the_journal,
    )
    result = RunResult(
        run_id=run_id,
        goal=goal,
        status=RunStatus.SUCCEEDED,
        plan=plan,
        subtasks={},
        models={t.value: m.spec.name for t, m in ladder.items()},
    )
    recorder.emit(RunStarted(run_id=run_id, elapsed_s=0.0, goal=goal, budget_usd=budget.usd))
    planner = config.planner
    planner_name = (planner.model or ladder[planner.tier_on(ladder)]).spec.name
    try:
        if plan is None:
            with collect_charges() as charges:
                try:
                    plan, _ = await planner.plan(
                        goal,
                        config.executors,
                        models=ladder,
                        ledger=ledger,
                        deps=deps,
                        on_delta=recorder.deltas(None, "planner", planner.tier_on(ladder)),
                    )
                finally:
                    result.planner_attempts.append(
                        _planner_attempt(charges, planner.tier_on(ladder), planner_name, "plan")
                    )
        else:
            problems = check_plan(plan, config.executors)
            if problems:
                raise PlanInvalid(problems)
        if config.plan_budget is not None or budget.usd is not None:
            plan, result.estimate = fit_plan(
                plan, config.executors, ladder, budget, ledger, config.plan_budget or "allow"
            )
        result.plan = plan
        if the_journal is not None:
            the_journal.record_plan(plan)
        recorder.emit(
            PlanCreated(
                **recorder.stamp(),
                plan=plan,
                subtasks=len(plan.subtasks),
            )
        )
        await _execute(run, plan, result)
        answer_problem = None
        if run.fatal is None and compose and _should_compose(run, result):
            answer_problem = await _compose(run, plan, result, output_type, planner_name)
    except (PlanInvalid, BudgetExceeded) as exc:  # no plan, so nothing ran
        status = RunStatus.BUDGET_EXCEEDED if isinstance(exc, BudgetExceeded) else RunStatus.FAILED
        recorder.finish(result, ladder.tiers, status, str(exc))
        exc.result = result
        raise
    except anyio.get_cancelled_exc_class():
        # synchronous bookkeeping only, so cancellation cannot interrupt it
        recorder.skip_unfinished(result.subtasks, "run cancelled")
        recorder.finish(result, ladder.tiers, RunStatus.CANCELLED, "run cancelled")
        raise
    if run.fatal is not None:
        fatal = run.fatal
        recorder.skip_unfinished(result.subtasks, f"run ended: {type(fatal).__name__}")
        recorder.finish(result, ladder.tiers, RunStatus.FAILED, f"{type(fatal).__name__}: {fatal}")
        if isinstance(fatal, TieredError):
            fatal.result = result
        raise fatal
    final: RunStatus | None = run.stop_status
    error = run.stop_reason
    if final is None and answer_problem is not None:
        final, error = RunStatus.ANSWER_REJECTED, answer_problem
    recorder.finish(result, ladder.tiers, final, error)
    return result


async def _execute(run: RunState, plan: Plan, result: RunResult) -> None:
    deadline = run.config.limits.deadline
    scope_cm: AbstractContextManager[Any] = (
        anyio.move_on_after(deadline) if deadline is not None else nullcontext()
    )
    with anyio.CancelScope() as fatal_scope:
        run.scope = fatal_scope
        with scope_cm as scope:
            await run_plan(run, plan, result.subtasks)
    if run.fatal is not None:
        return
    if scope is not None and scope.cancelled_caught:
        run.stop(RunStatus.DEADLINE, f"deadline of {deadline:g}s reached")
        run.recorder.skip_unfinished(result.subtasks, run.stop_reason or "deadline")


def _should_compose(run: RunState, result: RunResult) -> bool:
    if run.stop_reason is not None:
        return False
    return any(r.status is SubtaskStatus.SUCCEEDED for r in result.subtasks.values())


ANSWER_RETRIES = 1
"""How many times a final answer its check rejected is written again, with the reason."""


async def _compose(
    run: RunState, plan: Plan, result: RunResult, output_type: Any, planner_name: str
) -> str | None:
    """Write the final answer; return what its check found wrong, if anything.

    An answer its check rejects is written once more with the check's words as feedback
    (small composers invent numbers; told which, they usually copy the right one). A
    final answer that could not be written fails the run: the deliverable is missing.
    """
    results = result.subtasks
    outputs = {k: r.output for k, r in results.items() if r.status is SubtaskStatus.SUCCEEDED}
    failures = {
        k: r.error or r.status.value
        for k, r in results.items()
        if r.status is not SubtaskStatus.SUCCEEDED
    }
    recorder = run.recorder
    identity = ""
    if run.journal is not None:  # composed before a crash: do not pay for it twice
        identity = answer_identity(run.goal, outputs, failures)
        found, answer = run.journal.restore(FINAL_ANSWER, identity, output_type or str)
        if found:
            recorder.emit(ComposeStarted(**recorder.stamp()))
            result.final_answer = answer
            recorder.emit(ComposeFinished(**recorder.stamp(), error=None))
            return _check_answer(run, result, outputs)
    problem: str | None = None
    for _ in range(1 + ANSWER_RETRIES):
        error = await _compose_once(
            run, plan, result, output_type, planner_name, outputs, failures, problem, identity
        )
        if error is not None:
            return None
        problem = _check_answer(run, result, outputs)
        if problem is None:
            return None
        rejected = result.planner_attempts[-1]  # the report says why it was written again
        result.planner_attempts[-1] = replace(rejected, outcome="answer_rejected", error=problem)
    return problem


async def _compose_once(
    run: RunState,
    plan: Plan,
    result: RunResult,
    output_type: Any,
    planner_name: str,
    outputs: dict[str, Any],
    failures: dict[str, str],
    feedback: str | None,
    identity: str,
) -> str | None:
    """One compose call, booked as a planner attempt; the error that stopped the run, if any."""
    recorder = run.recorder
    recorder.emit(ComposeStarted(**recorder.stamp()))
    planner = run.config.planner
    error: str | None = None
    with collect_charges() as charges:
        try:
            composed = await planner.compose(
                run.goal,
                plan,
                outputs,
                failures=failures,
                output_type=output_type,
                models=run.ladder,
                ledger=run.ledger,
                deps=run.deps,
                on_delta=recorder.deltas(None, "planner", planner.tier_on(run.ladder)),
                feedback=feedback,
            )
        except BudgetExceeded as exc:
            run.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
            error = str(exc)
        except UserError:
            raise
        except TieredError as exc:
            error = f"composing the final answer failed: {exc}"
            run.stop(RunStatus.FAILED, error)
        else:
            result.final_answer = composed.output
            if run.journal is not None:
                run.journal.record_output(FINAL_ANSWER, identity, composed.output)
    tier = planner.tier_on(run.ladder)
    why = "compose" if feedback is None else "recompose"
    result.planner_attempts.append(_planner_attempt(charges, tier, planner_name, why))
    recorder.emit(ComposeFinished(**recorder.stamp(), error=error))
    return error


def _check_answer(run: RunState, result: RunResult, outputs: dict[str, Any]) -> str | None:
    check = run.config.answer_check
    if check is None:
        return None
    problem = check(result.final_answer, outputs)
    return f"the final answer failed its check: {problem}" if problem else None
