"""The orchestrator: plan a goal, run the DAG in an anyio task group under concurrency,
per-model and budget limits, route, escalate, and report.

A subtask starts as soon as its own dependencies finish. A failed subtask never cancels
independent ones; its dependents are skipped with the reason. A budget hit or deadline
stops new work and keeps every finished result.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio

from tiered._agent import Agent
from tiered._catalog import ModelSpec, Tier, default_catalog
from tiered._errors import (
    BudgetExceeded,
    PlanInvalid,
    TieredError,
    UserError,
)
from tiered._escalation import (
    Action,
    Attempt,
    DefaultPolicy,
    Escalate,
    EscalationPolicy,
    Failure,
    FailureKind,
    PolicyState,
    classify_failure,
)
from tiered._events import (
    PlanCreated,
    RunEvent,
    RunFinished,
    RunStarted,
    SubtaskEscalated,
    SubtaskFailed,
    SubtaskFinished,
    SubtaskRouted,
    SubtaskSkipped,
    SubtaskStarted,
)
from tiered._journal import Journal
from tiered._ledger import Budget, Ledger
from tiered._logging import get_logger
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelRequest,
    ModelResponse,
    ToolResultMessage,
)
from tiered._plan import Plan, Subtask, agent_input, check_plan
from tiered._planner import Planner, render_outputs
from tiered._result import RunResult, RunStatus, SubtaskResult, SubtaskStatus
from tiered._routing import Router, RouteRequest, RuleRouter, estimate_tokens
from tiered._usage import Usage
from tiered._verify import AgentCheck, Check, run_check
from tiered.models import Model, models_from_env

__all__ = ("Limits", "Orchestrator")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Every limit of a run; None means unlimited."""

    concurrency: int = 16
    """Subtask attempts running at once, across the run."""
    per_model: int | Mapping[str, int] | None = None
    """Model calls in flight per model name (one number for all, or per name)."""
    subtask_timeout: float | None = None
    """Seconds one attempt may take before it counts as a timeout failure."""
    deadline: float | None = None
    """Seconds the whole run may take; then it stops cleanly with what is done."""
    max_decompose_depth: int = 1
    """How many times a subtask may be handed back to the planner, nested."""


class _Metered:
    """Wraps one attempt's model: counts its usage and holds the per-model slot."""

    __slots__ = ("_limiter", "_model", "usage")

    def __init__(self, model: Model, limiter: anyio.CapacityLimiter | None) -> None:
        self._model = model
        self._limiter = limiter
        self.usage = Usage()

    @property
    def spec(self) -> ModelSpec:
        return self._model.spec

    async def request(self, request: ModelRequest) -> ModelResponse:
        if self._limiter is None:
            response = await self._model.request(request)
        else:
            async with self._limiter:
                response = await self._model.request(request)
        self.usage = self.usage + response.usage
        return response


class _Rejected(Exception):
    """Internal: a verifier rejected the output."""

    def __init__(self, reason: str, output: Any) -> None:
        self.reason = reason
        self.output = output
        super().__init__(reason)


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


@dataclass(slots=True)
class _RunState:
    """Mutable state of one run; never shared between runs."""

    run_id: str
    goal: str
    deps: Any
    models: Mapping[Tier, Model]
    ledger: Ledger
    started: float
    sink: Callable[[RunEvent], None] | None
    limiter: anyio.CapacityLimiter
    model_limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)
    stop_reason: str | None = None
    stop_status: RunStatus | None = None
    log: Any = None
    journal: Journal | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def stop(self, status: RunStatus, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_status = status


class Orchestrator:
    """Runs a goal: plan, route, execute, escalate, compose, report."""

    def __init__(
        self,
        executors: Sequence[Agent[Any]],
        *,
        planner: Planner | None = None,
        router: Router | None = None,
        policy: EscalationPolicy | None = None,
        limits: Limits | None = None,
        budget: Budget | Decimal | float | None = None,
        models: Mapping[Tier, Model] | None = None,
        verify: Mapping[str, Check | AgentCheck] | None = None,
        flagship: ModelSpec | None = None,
    ) -> None:
        self.executors: dict[str, Agent[Any]] = {}
        for agent in executors:
            if agent.name in self.executors:
                raise UserError(f"two executors are named {agent.name!r}: names must be unique")
            self.executors[agent.name] = agent
        if not self.executors:
            raise UserError("an Orchestrator needs at least one executor agent")
        self.planner = planner if planner is not None else Planner()
        self.router: Router = router if router is not None else RuleRouter()
        self.policy: EscalationPolicy = policy if policy is not None else DefaultPolicy()
        self.limits = limits if limits is not None else Limits()
        if budget is None or isinstance(budget, Budget):
            self.budget = budget or Budget()
        else:
            self.budget = Budget(usd=Decimal(str(budget)))
        self.models = models
        self.verify = dict(verify or {})
        unknown = set(self.verify) - set(self.executors)
        if unknown:
            raise UserError(f"verifiers name unknown executors: {', '.join(sorted(unknown))}")
        self.flagship = flagship
        self._escalate = Escalate()

    # --- public entry points ----------------------------------------------------------

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
    ) -> RunResult:
        """Run `goal` to a `RunResult`; partial failure, budget and deadline keep results.

        Pass `plan` to skip planning. With `journal` (a file path), the plan and every
        finished output are appended to it as they happen, and a rerun of the same goal
        with the same journal picks up where a crashed run stopped. Raises `PlanInvalid`
        if no valid plan could be made, `BudgetExceeded` if the budget ran out before a
        plan existed.
        """
        models = self.models if self.models is not None else models_from_env()
        state = _RunState(
            run_id=uuid.uuid4().hex[:12],
            goal=goal,
            deps=deps,
            models=models,
            ledger=Ledger(self.budget, flagship=self._flagship_spec(models)),
            started=time.perf_counter(),
            sink=on_event,
            limiter=anyio.CapacityLimiter(self.limits.concurrency),
        )
        state.log = get_logger(run_id=state.run_id)
        if journal is not None:
            state.journal = journal if isinstance(journal, Journal) else Journal(journal)
            state.journal.load(goal)
            if plan is None:
                plan = state.journal.plan
        self._emit(state, RunStarted(run_id=state.run_id, elapsed_s=0.0, goal=goal))
        results: dict[str, SubtaskResult] = {}
        result = self._result(state, plan, results)
        try:
            if plan is None:
                plan = await self._plan(state)
            else:
                problems = check_plan(plan, self.executors)
                if problems:
                    raise PlanInvalid(problems)
            result.plan = plan
            if state.journal is not None:
                state.journal.record_plan(goal, plan)
            self._emit(
                state,
                PlanCreated(
                    run_id=state.run_id,
                    elapsed_s=state.elapsed(),
                    plan=plan,
                    subtasks=len(plan.subtasks),
                ),
            )
            deadline: AbstractContextManager[Any] = (
                anyio.move_on_after(self.limits.deadline)
                if self.limits.deadline is not None
                else nullcontext()
            )
            with deadline as scope:
                await self._execute(state, plan, results, depth=0, id_prefix="")
            if scope is not None and scope.cancelled_caught:
                state.stop(RunStatus.DEADLINE, f"deadline of {self.limits.deadline:g}s reached")
                self._mark_unfinished(results, state.stop_reason or "deadline")
            if compose and self._should_compose(state, results):
                await self._compose(state, plan, results, result, output_type)
        except (PlanInvalid, BudgetExceeded) as exc:  # no plan, so nothing ran
            status = (
                RunStatus.BUDGET_EXCEEDED if isinstance(exc, BudgetExceeded) else RunStatus.FAILED
            )
            self._finish(state, result, results, status, str(exc))
            exc.result = result
            raise
        except anyio.get_cancelled_exc_class():
            # synchronous bookkeeping only, so cancellation cannot interrupt it
            self._mark_unfinished(results, "run cancelled")
            self._finish(state, result, results, RunStatus.CANCELLED, "run cancelled")
            raise
        self._finish(state, result, results, None, None)
        return result

    async def stream(
        self,
        goal: str,
        *,
        deps: Any = None,
        plan: Plan | None = None,
        output_type: Any = str,
        compose: bool = True,
    ) -> AsyncIterator[RunEvent]:
        """The run's events as they happen; the last is `RunFinished` carrying the result.

        Iterate to the end (breaking early leaves the run to be cancelled when the
        generator is closed).
        """
        send, receive = anyio.create_memory_object_stream[RunEvent](math.inf)
        failure: list[BaseException] = []

        async def runner() -> None:
            async with send:
                try:
                    await self.run(
                        goal,
                        deps=deps,
                        plan=plan,
                        output_type=output_type,
                        compose=compose,
                        on_event=send.send_nowait,
                    )
                except Exception as exc:
                    failure.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            async with receive:
                async for event in receive:
                    yield event
        if failure:
            raise failure[0]

    # --- planning and composing -------------------------------------------------------

    def _flagship_spec(self, models: Mapping[Tier, Model]) -> ModelSpec:
        if self.flagship is not None:
            return self.flagship
        catalog = default_catalog()
        top = models.get(Tier.FLAGSHIP)
        if top is None:
            return catalog.for_tier(Tier.FLAGSHIP)
        spec = top.spec
        if spec.equivalent and spec.equivalent in catalog:
            return catalog[spec.equivalent]
        return spec

    async def _plan(self, state: _RunState) -> Plan:
        plan, _ = await self.planner.plan(
            state.goal, self.executors, models=state.models, ledger=state.ledger, deps=state.deps
        )
        return plan

    def _should_compose(self, state: _RunState, results: dict[str, SubtaskResult]) -> bool:
        if state.stop_reason is not None:
            return False
        return any(r.status is SubtaskStatus.SUCCEEDED for r in results.values())

    async def _compose(
        self,
        state: _RunState,
        plan: Plan,
        results: dict[str, SubtaskResult],
        result: RunResult,
        output_type: Any,
    ) -> None:
        outputs = {k: r.output for k, r in results.items() if r.status is SubtaskStatus.SUCCEEDED}
        failures = {
            k: r.error or r.status.value
            for k, r in results.items()
            if r.status is not SubtaskStatus.SUCCEEDED
        }
        try:
            composed = await self.planner.compose(
                state.goal,
                plan,
                outputs,
                failures=failures,
                output_type=output_type,
                models=state.models,
                ledger=state.ledger,
                deps=state.deps,
            )
        except BudgetExceeded as exc:
            state.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
            return
        except TieredError as exc:
            result.error = f"composing the final answer failed: {exc}"
            return
        result.final_answer = composed.output

    # --- the DAG ----------------------------------------------------------------------

    async def _execute(
        self,
        state: _RunState,
        plan: Plan,
        results: dict[str, SubtaskResult],
        *,
        depth: int,
        id_prefix: str,
    ) -> None:
        """Run every subtask of `plan`; each starts when its own dependencies are done."""
        done = {s.id: anyio.Event() for s in plan.subtasks}
        for s in plan.subtasks:
            results[s.id] = SubtaskResult(subtask=s)
        async with anyio.create_task_group() as tg:
            for s in plan.subtasks:
                tg.start_soon(self._run_subtask, state, s, results, done, depth, id_prefix)

    async def _run_subtask(
        self,
        state: _RunState,
        s: Subtask,
        results: dict[str, SubtaskResult],
        done: dict[str, anyio.Event],
        depth: int,
        id_prefix: str,
    ) -> None:
        record = results[s.id]
        sid = id_prefix + s.id
        try:
            for d in s.depends_on:
                await done[d].wait()
            bad = [d for d in s.depends_on if results[d].status is not SubtaskStatus.SUCCEEDED]
            if bad:
                why = "; ".join(f"{d} {results[d].status.value}" for d in bad)
                self._skip(state, record, sid, f"dependency did not succeed: {why}")
                return
            if state.stop_reason is not None:
                self._skip(state, record, sid, state.stop_reason)
                return
            if state.journal is not None:
                found, output = state.journal.restore(sid, self.executors[s.agent].output_type)
                if found:
                    record.restored = True
                    self._succeed(state, record, sid, self.executors[s.agent].tier, output)
                    return
            inputs = {d: results[d].output for d in s.depends_on}
            await self._attempts(state, s, sid, record, inputs, depth)
        except BudgetExceeded as exc:  # e.g. from a classifier router's model call
            state.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
            self._skip(state, record, sid, str(exc))
        except Exception as exc:  # a bug in a hook must not take the other subtasks down
            self._fail(state, record, sid, f"{type(exc).__name__}: {exc}")
        finally:
            done[s.id].set()

    def _skip(self, state: _RunState, record: SubtaskResult, sid: str, reason: str) -> None:
        record.status = SubtaskStatus.SKIPPED
        record.error = reason
        self._emit(
            state,
            SubtaskSkipped(
                run_id=state.run_id, elapsed_s=state.elapsed(), subtask_id=sid, reason=reason
            ),
        )

    def _model_limiter(self, state: _RunState, name: str) -> anyio.CapacityLimiter | None:
        per = self.limits.per_model
        if per is None:
            return None
        n = per if isinstance(per, int) else per.get(name)
        if n is None:
            return None
        limiter = state.model_limiters.get(name)
        if limiter is None:
            limiter = state.model_limiters[name] = anyio.CapacityLimiter(n)
        return limiter

    def _context(self, s: Subtask, inputs: Mapping[str, Any]) -> str:
        text = f"Task: {s.instructions}"
        if inputs:
            text += "\n\nOutputs of the subtasks this one depends on:\n" + render_outputs(inputs)
        return text

    async def _attempts(
        self,
        state: _RunState,
        s: Subtask,
        sid: str,
        record: SubtaskResult,
        inputs: Mapping[str, Any],
        depth: int,
    ) -> None:
        agent = self.executors[s.agent]
        typed_input = agent_input(agent, s.arguments)
        context = self._context(s, inputs)
        estimate = estimate_tokens(
            agent.instructions + context + json.dumps(s.arguments, default=str)
        ) + sum(estimate_tokens(json.dumps(t.definition().parameters)) for t in agent.tools)
        route = await self.router.route(
            RouteRequest(
                subtask=s,
                agent=agent,
                estimated_input_tokens=estimate,
                specs={t: m.spec for t, m in state.models.items()},
            ),
            models=state.models,
            ledger=state.ledger,
        )
        record.route = route
        self._emit(
            state,
            SubtaskRouted(
                run_id=state.run_id,
                elapsed_s=state.elapsed(),
                subtask_id=sid,
                tier=route.tier,
                reason=route.reason,
            ),
        )
        tier = route.tier
        reason = f"routed: {route.reason}"
        history: Sequence[Message] = ()
        followup: str | None = None
        started_event = False
        while True:
            if state.stop_reason is not None:
                record.status = SubtaskStatus.SKIPPED
                record.error = state.stop_reason
                return
            model = state.models.get(tier)
            if model is None:
                raise UserError(f"no model for tier {tier.value!r} in the ladder")
            metered = _Metered(model, self._model_limiter(state, model.spec.name))
            t0 = time.perf_counter()
            async with state.limiter:
                if not started_event:
                    started_event = True
                    record.status = SubtaskStatus.RUNNING
                    self._emit(
                        state,
                        SubtaskStarted(
                            run_id=state.run_id,
                            elapsed_s=state.elapsed(),
                            subtask_id=sid,
                            agent=agent.name,
                        ),
                    )
                try:
                    timeout: AbstractContextManager[Any] = (
                        anyio.fail_after(self.limits.subtask_timeout)
                        if self.limits.subtask_timeout is not None
                        else nullcontext()
                    )
                    with timeout:
                        res = await agent.run(
                            typed_input,
                            deps=state.deps,
                            model=metered,
                            ledger=state.ledger,
                            history=history,
                            followup=followup,
                            extra_tools=(self._escalate,),
                            subtask_id=sid,
                            context=context,
                            dependencies=inputs,
                        )
                        check = self.verify.get(agent.name)
                        if check is not None:
                            rejection = await run_check(
                                check, s, res.output, models=state.models, ledger=state.ledger
                            )
                            if rejection:
                                raise _Rejected(rejection, res.output)
                    error: BaseException | None = None
                except BudgetExceeded as exc:
                    self._attempt(
                        state, record, tier, metered, reason, t0, "budget_exceeded", str(exc)
                    )
                    state.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
                    self._fail(state, record, sid, str(exc))
                    return
                except Exception as exc:
                    error = exc
            if error is None:
                self._attempt(state, record, tier, metered, reason, t0, "succeeded", None)
                self._succeed(state, record, sid, tier, res.output)
                return
            if isinstance(error, _Rejected):
                failure = Failure(
                    kind=FailureKind.VERIFIER_REJECTED, message=error.reason, tier=tier
                )
            else:
                failure = classify_failure(error, tier)
            self._attempt(
                state, record, tier, metered, reason, t0, failure.kind.value, failure.message
            )
            decision = self.policy.decide(
                failure,
                PolicyState(
                    attempts=record.attempts,
                    depth=depth,
                    max_depth=self.limits.max_decompose_depth,
                    top_tier=Tier.FLAGSHIP,
                ),
            )
            self._emit(
                state,
                SubtaskEscalated(
                    run_id=state.run_id,
                    elapsed_s=state.elapsed(),
                    subtask_id=sid,
                    action=decision.action.value,
                    from_tier=tier,
                    to_tier=decision.tier,
                    reason=decision.reason,
                ),
            )
            if decision.action is Action.RETRY and decision.tier is not None:
                tier, history, followup = decision.tier, (), None
                reason = f"retry: {decision.reason}"
            elif decision.action is Action.ESCALATE and decision.tier is not None:
                previous = getattr(error, "messages", ())
                note = (
                    f"A {tier.value}-tier model attempted this and stopped: "
                    f"{failure.kind.value}: {failure.message[:500]}"
                )
                history = _close_tool_calls(previous, "escalated to a higher tier")
                if history:
                    followup = (
                        f"{note}\nYou are a stronger model taking over. Finish the task and "
                        "give the final output."
                    )
                else:  # no transcript to continue (e.g. a verifier rejection): say why
                    followup = None
                    context = f"{context}\n\nAn earlier attempt failed. {note}"
                reason = f"escalated from {tier.value}: {decision.reason}"
                tier = decision.tier
            elif decision.action is Action.DECOMPOSE:
                await self._decompose(state, s, sid, record, inputs, depth, failure)
                return
            else:
                self._fail(
                    state,
                    record,
                    sid,
                    f"{failure.kind.value}: {failure.message}",
                    reason=f"{decision.reason}; last error: {failure.message}",
                )
                return

    def _attempt(
        self,
        state: _RunState,
        record: SubtaskResult,
        tier: Tier,
        metered: _Metered,
        reason: str,
        t0: float,
        outcome: str,
        error: str | None,
    ) -> None:
        cost, equivalent = state.ledger.quote(metered.spec, metered.usage)
        record.attempts.append(
            Attempt(
                number=len(record.attempts) + 1,
                tier=tier,
                model=metered.spec.name,
                reason=reason,
                usage=metered.usage,
                cost=cost,
                equivalent_cost=equivalent,
                duration_s=round(time.perf_counter() - t0, 4),
                outcome=outcome,
                error=error,
            )
        )

    async def _decompose(
        self,
        state: _RunState,
        s: Subtask,
        sid: str,
        record: SubtaskResult,
        inputs: Mapping[str, Any],
        depth: int,
        failure: Failure,
    ) -> None:
        """Hand the subtask to the planner, run its sub-plan, compose the subtask's output."""
        t0 = time.perf_counter()
        planner_model = self.planner.model or state.models[self.planner.tier]
        try:
            sub_plan, planned = await self.planner.decompose(
                state.goal,
                s,
                failure.message,
                self.executors,
                inputs=inputs,
                models=state.models,
                ledger=state.ledger,
                deps=state.deps,
            )
        except (PlanInvalid, BudgetExceeded) as exc:
            if isinstance(exc, BudgetExceeded):
                state.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
            self._fail(state, record, sid, f"decomposition failed: {exc}")
            return
        record.sub_plan = sub_plan
        self._emit(
            state,
            PlanCreated(
                run_id=state.run_id,
                elapsed_s=state.elapsed(),
                plan=sub_plan,
                subtasks=len(sub_plan.subtasks),
                parent=sid,
            ),
        )
        children: dict[str, SubtaskResult] = {}
        await self._execute(state, sub_plan, children, depth=depth + 1, id_prefix=f"{sid}/")
        record.children = list(children.values())
        agent = self.executors[s.agent]
        outputs = {k: r.output for k, r in children.items() if r.status is SubtaskStatus.SUCCEEDED}
        composed_usage = planned.usage
        outcome, error, output = "decomposed", None, None
        if len(outputs) < len(children):
            outcome, error = "failed", "some subtasks of the decomposition did not succeed"
        else:
            try:
                composed = await self.planner.compose(
                    s.instructions,
                    sub_plan,
                    outputs,
                    output_type=agent.output_type,
                    models=state.models,
                    ledger=state.ledger,
                    deps=state.deps,
                )
                composed_usage = composed_usage + composed.usage
                output = composed.output
            except BudgetExceeded as exc:
                state.stop(RunStatus.BUDGET_EXCEEDED, str(exc))
                outcome, error = "budget_exceeded", str(exc)
            except TieredError as exc:
                outcome, error = "failed", f"composing the sub-plan's output failed: {exc}"
        cost, equivalent = state.ledger.quote(planner_model.spec, composed_usage)
        record.attempts.append(
            Attempt(
                number=len(record.attempts) + 1,
                tier=self.planner.tier,
                model=planner_model.spec.name,
                reason=f"decomposed by the planner: {failure.kind.value}",
                usage=composed_usage,
                cost=cost,
                equivalent_cost=equivalent,
                duration_s=round(time.perf_counter() - t0, 4),
                outcome=outcome,
                error=error,
            )
        )
        if error is None:
            self._succeed(state, record, sid, self.planner.tier, output)
        else:
            self._fail(state, record, sid, error)

    # --- results and events -----------------------------------------------------------

    def _succeed(
        self, state: _RunState, record: SubtaskResult, sid: str, tier: Tier, output: Any
    ) -> None:
        """Record a subtask's output, journal it unless it came from the journal, tell."""
        record.output = output
        record.status = SubtaskStatus.SUCCEEDED
        if state.journal is not None and not record.restored:
            state.journal.record_output(sid, output)
        self._emit(
            state,
            SubtaskFinished(
                run_id=state.run_id,
                elapsed_s=state.elapsed(),
                subtask_id=sid,
                tier=tier,
                attempts=len(record.attempts),
                usage=record.usage,
                cost=record.cost,
                equivalent_cost=record.equivalent_cost,
            ),
        )

    def _fail(
        self,
        state: _RunState,
        record: SubtaskResult,
        sid: str,
        error: str,
        *,
        reason: str | None = None,
    ) -> None:
        """Mark a subtask failed with `error`; the event carries `reason` (or the error)."""
        record.status = SubtaskStatus.FAILED
        record.error = error
        self._emit(
            state,
            SubtaskFailed(
                run_id=state.run_id,
                elapsed_s=state.elapsed(),
                subtask_id=sid,
                reason=reason or error,
            ),
        )

    def _mark_unfinished(self, results: dict[str, SubtaskResult], reason: str) -> None:
        for r in results.values():
            if r.status in (SubtaskStatus.PENDING, SubtaskStatus.RUNNING):
                r.status = SubtaskStatus.SKIPPED
                r.error = reason
            self._mark_unfinished({c.subtask.id: c for c in r.children}, reason)

    def _result(
        self, state: _RunState, plan: Plan | None, results: dict[str, SubtaskResult]
    ) -> RunResult:
        return RunResult(
            run_id=state.run_id,
            goal=state.goal,
            status=RunStatus.SUCCEEDED,
            plan=plan,
            subtasks=results,
            models={t.value: m.spec.name for t, m in state.models.items()},
        )

    def _finish(
        self,
        state: _RunState,
        result: RunResult,
        results: dict[str, SubtaskResult],
        status: RunStatus | None,
        error: str | None,
    ) -> None:
        ledger = state.ledger
        result.usage = ledger.usage
        result.cost = ledger.cost
        result.equivalent_cost = ledger.equivalent_cost
        result.counterfactual_cost = ledger.flagship_cost
        result.by_tier = ledger.by_tier()
        result.wall_time_s = round(state.elapsed(), 3)
        if status is None:
            if state.stop_status is not None:
                status, error = state.stop_status, state.stop_reason
            else:
                statuses = [r.status for r in results.values()]
                if all(st is SubtaskStatus.SUCCEEDED for st in statuses):
                    status = RunStatus.SUCCEEDED
                elif any(st is SubtaskStatus.SUCCEEDED for st in statuses):
                    status = RunStatus.PARTIAL
                else:
                    status = RunStatus.FAILED
        result.status = status
        if error is not None:
            result.error = error
        self._emit(
            state,
            RunFinished(
                run_id=state.run_id,
                elapsed_s=state.elapsed(),
                status=status.value,
                usage=result.usage,
                cost=result.cost,
                equivalent_cost=result.equivalent_cost,
                counterfactual_cost=result.counterfactual_cost,
                result=result,
            ),
        )

    def _emit(self, state: _RunState, event: RunEvent) -> None:
        state.log.info(event.name, **event.log_fields())
        if state.sink is not None:
            # events are frozen for consumers; the run totals are stamped once, here
            object.__setattr__(event, "run_usage", state.ledger.usage)
            object.__setattr__(event, "run_equivalent_cost", state.ledger.equivalent_cost)
            try:
                state.sink(event)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                state.sink = None  # the consumer went away; the run goes on
