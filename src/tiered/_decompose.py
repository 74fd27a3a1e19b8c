"""The decomposer: hand a failed or plan-shaped subtask to the planner, run its sub-plan,
and compose the subtask's typed output from the sub-plan's outputs.

The planner's calls for one decomposition (the sub-plan and the compose) are one
attempt on the planner's tier; the sub-plan's subtasks keep their own attempts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from tiered._errors import BudgetExceeded, PlanInvalid, TieredError
from tiered._escalation import Failure
from tiered._events import PlanCreated
from tiered._ledger import collect_charges
from tiered._plan import Plan
from tiered._result import RunStatus, SubtaskResult, SubtaskStatus
from tiered._run_state import RunState

if TYPE_CHECKING:
    from tiered._steps import SubtaskJob

__all__ = ("PlanRunner", "decompose")


class PlanRunner(Protocol):
    """Runs a (sub-)plan's subtasks into `results` (the scheduler)."""

    def __call__(
        self,
        run: RunState,
        plan: Plan,
        results: dict[str, SubtaskResult],
        *,
        depth: int,
        prefix: str,
    ) -> Awaitable[None]:
        """Run every subtask of `plan`."""
        ...


async def decompose(run: RunState, job: SubtaskJob, failure: Failure, run_plan: PlanRunner) -> None:
    """Plan, run and compose the subtask's work in smaller steps; record one planner attempt."""
    planner = run.config.planner
    record, sid, recorder = job.record, job.sid, run.recorder
    planner_model = planner.model or run.ladder[planner.tier_on(run.ladder)]
    started = time.perf_counter()

    def book(charges: list[Any], outcome: str, error: str | None) -> None:
        recorder.attempt(
            record,
            sid=sid,
            tier=planner.tier_on(run.ladder),
            model=planner_model.spec.name,
            reason=f"decomposed by the planner: {failure.kind.value}",
            started=started,
            outcome=outcome,
            error=error,
            charges=charges,
        )

    with collect_charges() as charges:
        try:
            sub_plan, _ = await planner.decompose(
                run.goal,
                job.subtask,
                failure.message,
                run.config.executors,
                inputs=job.inputs,
                models=run.ladder,
                ledger=run.ledger,
                deps=run.deps,
            )
        except (PlanInvalid, BudgetExceeded) as exc:
            error: BaseException | None = exc
        else:
            error = None
    if error is not None:
        if isinstance(error, BudgetExceeded):
            run.stop(RunStatus.BUDGET_EXCEEDED, str(error))
        book(charges, "failed", f"decomposition failed: {error}")
        recorder.failed(record, sid, f"decomposition failed: {error}")
        return
    record.sub_plan = sub_plan
    recorder.emit(
        PlanCreated(
            **recorder.stamp(),
            plan=sub_plan,
            subtasks=len(sub_plan.subtasks),
            parent=sid,
        )
    )
    children: dict[str, SubtaskResult] = {}
    record.children = []
    try:
        await run_plan(run, sub_plan, children, depth=job.depth + 1, prefix=f"{sid}/")
    finally:
        record.children = list(children.values())
    outputs = {k: r.output for k, r in children.items() if r.status is SubtaskStatus.SUCCEEDED}
    outcome, message, output = "decomposed", None, None
    if len(outputs) < len(children):
        outcome, message = "failed", "some subtasks of the decomposition did not succeed"
    else:
        with collect_charges() as composed:
            try:
                result = await planner.compose(
                    job.subtask.instructions,
                    sub_plan,
                    outputs,
                    output_type=job.agent.output_type,
                    models=run.ladder,
                    ledger=run.ledger,
                    deps=run.deps,
                )
                output = result.output
            except BudgetExceeded as exc:
                run.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
                outcome, message = "budget_exceeded", str(exc)
            except TieredError as exc:
                outcome, message = "failed", f"composing the sub-plan's output failed: {exc}"
        charges.extend(composed)
    book(charges, outcome, message)
    if message is None:
        recorder.succeeded(record, sid, planner.tier_on(run.ladder), output, identity=job.identity)
    else:
        recorder.failed(record, sid, message)
