"""`Orchestrator`: the front door. It holds a team's settings and runs goals with them.

Each phase lives in its own module: `_run` (a run, phase by phase), `_scheduler`
(the ready queue), `_subtask` and `_attempt` (one subtask, one attempt, typed steps),
`_decompose` (back to the planner), `_recorder` (results, events, journal) and
`_stream` (events for one consumer with backpressure).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from tiered._agent import Agent
from tiered._catalog import ModelSpec, Tier
from tiered._errors import UserError
from tiered._escalation import EscalationPolicy
from tiered._estimate import PlanBudget
from tiered._events import RunEvent
from tiered._gain import default_router, evidence_for, gain_aware_policy
from tiered._journal import Journal
from tiered._ledger import Budget
from tiered._limits import Limits
from tiered._plan import Plan
from tiered._planner import Planner
from tiered._result import RunResult
from tiered._routing import Router
from tiered._run import execute_run
from tiered._run_state import AnswerCheck, AttemptStats, RunConfig
from tiered._stream import EventChannel, EventStream, open_stream
from tiered._sync import run_sync
from tiered._verify import AgentCheck, Check
from tiered.models import Ladder, Model, models_from_env

__all__ = ("Limits", "Orchestrator")


def _budget(budget: Budget | Decimal | float | None) -> Budget:
    if budget is None:
        return Budget()
    if isinstance(budget, Budget):
        return budget
    return Budget(usd=Decimal(str(budget)))


class Orchestrator:
    """Runs a goal: plan, route, execute, escalate, compose, report.

    `plan_budget="refuse"` refuses a plan whose cost estimate is over the dollar budget
    before anything runs (`PlanOverBudget`); `"fit"` routes subtasks down a rung until it
    fits. Nothing is shared between runs: each gets its own ledger, limiter and state.
    """

    def __init__(
        self,
        executors: Sequence[Agent[Any, Any]],
        *,
        planner: Planner | None = None,
        router: Router | None = None,
        policy: EscalationPolicy | None = None,
        limits: Limits | None = None,
        budget: Budget | Decimal | float | None = None,
        models: Mapping[Tier, Model] | None = None,
        verify: Mapping[str, Check | AgentCheck] | None = None,
        flagship: ModelSpec | None = None,
        answer_check: AnswerCheck | None = None,
        stats: AttemptStats | None = None,
        plan_budget: PlanBudget | None = None,
    ) -> None:
        named: dict[str, Agent[Any, Any]] = {}
        for agent in executors:
            if agent.name in named:
                raise UserError(f"two executors are named {agent.name!r}: names must be unique")
            named[agent.name] = agent
        if not named:
            raise UserError("an Orchestrator needs at least one executor agent")
        checks = dict(verify or {})
        unknown = set(checks) - set(named)
        if unknown:
            raise UserError(f"verifiers name unknown executors: {', '.join(sorted(unknown))}")
        self.config = RunConfig(
            executors=named,
            planner=planner if planner is not None else Planner(),
            router=default_router(router, stats),
            policy=policy if policy is not None else gain_aware_policy(evidence_for(router, stats)),
            limits=limits if limits is not None else Limits(),
            verify=checks,
            answer_check=answer_check,
            stats=stats,
            plan_budget=plan_budget,
        )
        self.budget = _budget(budget)
        self.models = None if models is None else Ladder.of(models)
        self.flagship = flagship

    @property
    def executors(self) -> Mapping[str, Agent[Any, Any]]:
        """The executor agents by name."""
        return self.config.executors

    @property
    def planner(self) -> Planner:
        """The planner that plans, decomposes and composes."""
        return self.config.planner

    @property
    def limits(self) -> Limits:
        """The run limits."""
        return self.config.limits

    async def run(
        self,
        goal: str,
        *,
        deps: Any = None,
        plan: Plan | None = None,
        output_type: Any = str,
        compose: bool = True,
        on_event: Callable[[RunEvent], None] | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        model_deltas: bool = False,
    ) -> RunResult:
        """Run `goal` to a `RunResult`; partial failure, budget and deadline keep results.

        Pass `plan` to skip planning. With `journal` (a run directory, or a `Journal`), the
        plan, every charge, attempt and finished output, and every side-effecting tool
        call are written as they happen; `resume()` (or a rerun of the same goal with the
        same directory) picks up where a crashed run stopped. Raises `PlanInvalid`
        if no valid plan could be made, `BudgetExceeded` if the budget ran out before a
        plan existed, and a `UserError` (or the user code's own exception) for misuse,
        each carrying the result so far as `.result` when it is a `TieredError`.
        `model_deltas=True` asks every model to stream and sends `model.delta` events to
        `on_event` (a live view of the planner's and executors' text).
        """
        return await self._execute(
            goal, deps, plan, output_type, compose, on_event, None, journal, model_deltas
        )

    async def resume(
        self,
        run_dir: str | os.PathLike[str] | Journal,
        *,
        deps: Any = None,
        output_type: Any = str,
        compose: bool = True,
        on_event: Callable[[RunEvent], None] | None = None,
    ) -> RunResult:
        """Continue the journaled run in `run_dir`: its goal and plan, its spend so far,
        every finished output whose inputs are unchanged, every side effect already done."""
        journal = run_dir if isinstance(run_dir, Journal) else Journal(run_dir)
        if journal.goal is None:
            raise UserError(f"{str(journal.dir)!r} holds no run to resume: start one with run()")
        return await self.run(
            journal.goal,
            deps=deps,
            output_type=output_type,
            compose=compose,
            on_event=on_event,
            journal=journal,
        )

    def run_sync(self, goal: str, **kwargs: Any) -> RunResult:
        """`run` for scripts and notebooks: blocks until the result (takes `run`'s keywords)."""
        return run_sync(self.run, goal, **kwargs)

    @asynccontextmanager
    async def stream(
        self,
        goal: str,
        *,
        deps: Any = None,
        plan: Plan | None = None,
        output_type: Any = str,
        compose: bool = True,
        journal: str | os.PathLike[str] | Journal | None = None,
        max_buffer: int = 256,
        model_deltas: bool = True,
    ) -> AsyncIterator[EventStream]:
        """The run's events as they happen: `async with orch.stream(goal) as events:`.

        Iterate `events`; the last is `run.finished`, carrying the result (also
        `events.result`). The run waits while `max_buffer` events are unread; leaving the
        block early cancels the run's model calls.
        """

        async def go(channel: EventChannel) -> RunResult:
            return await self._execute(
                goal, deps, plan, output_type, compose, None, channel, journal, model_deltas
            )

        async with open_stream(go, max_buffer=max_buffer) as events:
            yield events

    async def _execute(
        self,
        goal: str,
        deps: Any,
        plan: Plan | None,
        output_type: Any,
        compose: bool,
        on_event: Callable[[RunEvent], None] | None,
        channel: EventChannel | None,
        journal: str | os.PathLike[str] | Journal | None,
        model_deltas: bool = False,
    ) -> RunResult:
        ladder = self.models if self.models is not None else Ladder.of(models_from_env())
        return await execute_run(
            self.config,
            goal,
            ladder=ladder,
            budget=self.budget,
            flagship=self.flagship,
            deps=deps,
            plan=plan,
            output_type=output_type,
            compose=compose,
            sink=on_event if channel is None else channel.emit,
            channel=channel,
            journal=journal,
            model_deltas=model_deltas,
        )
