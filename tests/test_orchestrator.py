"""Orchestration through the real seams: ScriptedModel on every tier, the real scheduler."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestration_support import Echo, Text, draft, ladder, last_user, plan_json, subtask, tier_of
from tiered import (
    Budget,
    Limits,
    ModelRequest,
    Orchestrator,
    Plan,
    PlanInvalid,
    RunContext,
    RunEvent,
    RunStatus,
    ScriptedModel,
    Subtask,
    SubtaskStatus,
    Tier,
    UserError,
    default_catalog,
)
from tiered._errors import ProviderError
from tiered.models import Model, ScriptStep, call

pytestmark = pytest.mark.anyio


async def test_200_subtasks_run_at_exactly_the_concurrency_limit() -> None:
    in_flight = 0
    peak = 0

    async def responder(request: ModelRequest) -> ScriptStep:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return {"text": "ok"}

    orch = Orchestrator([Echo()], models=ladder(responder), limits=Limits(concurrency=16))
    plan = Plan(subtasks=tuple(subtask(f"s{i}") for i in range(200)))
    result = await orch.run("many", plan=plan, compose=False)

    assert result.status is RunStatus.SUCCEEDED
    assert len(result.outputs) == 200
    assert peak == 16


async def test_diamond_join_starts_after_both_branches_and_gets_both_outputs() -> None:
    finished: dict[str, float] = {}
    started: dict[str, float] = {}
    seen_deps: dict[str, Any] = {}

    class Joiner(Echo):
        """Joins two texts."""

        name = "Joiner"

        async def validate_output(self, output: Text, ctx: RunContext[Any]) -> Text:
            seen_deps.update(ctx.dependencies)
            return output

    async def responder(request: ModelRequest) -> ScriptStep:
        sid = request.metadata["subtask_id"]
        started[sid] = anyio.current_time()
        await anyio.sleep({"left": 0.05, "right": 0.1}.get(sid, 0.0))
        finished[sid] = anyio.current_time()
        return {"text": f"out-{sid}"}

    models = ladder(responder)
    orch = Orchestrator([Echo(), Joiner()], models=models)
    plan = Plan(
        subtasks=(
            subtask("root"),
            subtask("left", "root"),
            subtask("right", "root"),
            subtask("join", "left", "right", agent="Joiner"),
        )
    )
    result = await orch.run("diamond", plan=plan, compose=False)

    assert result.status is RunStatus.SUCCEEDED
    assert started["join"] >= max(finished["left"], finished["right"])
    assert started["left"] >= finished["root"]
    assert started["right"] >= finished["root"]
    assert seen_deps == {"left": Text(text="out-left"), "right": Text(text="out-right")}
    join_request = next(
        r
        for m in models.values()
        for r in m.requests  # type: ignore[attr-defined]
        if r.metadata["subtask_id"] == "join"
    )
    prompt = last_user(join_request)
    assert "out-left" in prompt
    assert "out-right" in prompt


async def test_an_agent_that_uses_no_dependencies_waits_but_reads_no_upstream_output() -> None:
    seen_deps: dict[str, Any] = {"unset": True}
    started: dict[str, float] = {}
    finished: dict[str, float] = {}

    class Standalone(Echo):
        """Works from its arguments alone."""

        name = "Standalone"
        uses_dependencies = False

        async def validate_output(self, output: Text, ctx: RunContext[Any]) -> Text:
            seen_deps.clear()
            seen_deps.update(ctx.dependencies)
            return output

    async def responder(request: ModelRequest) -> ScriptStep:
        sid = request.metadata["subtask_id"]
        started[sid] = anyio.current_time()
        await anyio.sleep(0.02 if sid == "root" else 0.0)
        finished[sid] = anyio.current_time()
        return {"text": f"out-{sid}"}

    models = ladder(responder)
    orch = Orchestrator([Echo(), Standalone()], models=models)
    plan = Plan(subtasks=(subtask("root"), subtask("alone", "root", agent="Standalone")))
    result = await orch.run("standalone", plan=plan, compose=False)

    assert result.status is RunStatus.SUCCEEDED
    assert started["alone"] >= finished["root"]  # a plan's order is still kept
    assert seen_deps == {}
    alone_request = next(
        r
        for m in models.values()
        for r in m.requests  # type: ignore[attr-defined]
        if r.metadata["subtask_id"] == "alone"
    )
    assert "out-root" not in last_user(alone_request)


async def test_nano_fails_validation_twice_then_mini_succeeds() -> None:
    models: dict[Tier, Model] = {}

    def responder(request: ModelRequest) -> ScriptStep:
        if tier_of(request, models) is Tier.NANO:
            return {"wrong": "shape"}
        return {"text": "fixed by mini"}

    models.update(ladder(responder))
    agent = Echo(max_repairs=1)
    orch = Orchestrator([agent], models=models)
    result = await orch.run("one", plan=Plan(subtasks=(subtask("only"),)), compose=False)

    record = result.subtasks["only"]
    assert record.status is SubtaskStatus.SUCCEEDED
    assert record.output == Text(text="fixed by mini")
    assert record.tier_path == [Tier.NANO, Tier.MINI]
    first, second = record.attempts
    assert first.outcome == "output_invalid"
    assert first.usage.requests == 2
    assert second.outcome == "succeeded"
    assert "escalated from nano" in second.reason
    cat = default_catalog()
    assert first.cost == cat["gpt-5.4-nano"].cost(first.usage) > 0
    assert second.cost == cat["gpt-5.4-mini"].cost(second.usage) > 0
    assert result.cost == first.cost + second.cost
    assert result.by_tier[Tier.NANO].usage.requests == 2
    assert result.counterfactual_cost == cat["gpt-5.4"].cost(result.usage)


async def test_executor_escalates_and_the_planner_decomposes() -> None:
    def responder(request: ModelRequest) -> ScriptStep:
        agent = request.metadata["agent"]
        sid = request.metadata["subtask_id"]
        if agent == "planner":
            return plan_json(draft("part1"), draft("part2"))
        if agent == "planner.compose":
            return {"text": "composed from parts"}
        if sid == "big":
            return call("escalate", {"reason": "needs a plan", "plan_shaped": True})
        return {"text": f"done {sid}"}

    orch = Orchestrator([Echo()], models=ladder(responder))
    result = await orch.run("big job", plan=Plan(subtasks=(subtask("big"),)), compose=False)

    record = result.subtasks["big"]
    assert record.status is SubtaskStatus.SUCCEEDED
    assert record.output == Text(text="composed from parts")
    assert record.sub_plan is not None
    assert [c.subtask.id for c in record.children] == ["part1", "part2"]
    assert all(c.status is SubtaskStatus.SUCCEEDED for c in record.children)
    assert [a.outcome for a in record.attempts] == ["plan_shaped", "decomposed"]
    assert record.attempts[-1].tier is Tier.FLAGSHIP


async def test_planner_repairs_unknown_agent_and_cycle() -> None:
    prompts: list[str] = []
    replies = [
        plan_json(draft("a"), draft("b", agent="Ghost")),
        plan_json(draft("a", "b"), draft("b", "a")),
        plan_json(draft("a"), draft("b", "a")),
    ]

    def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["agent"] == "planner":
            prompts.append(last_user(request))
            return replies[len(prompts) - 1]
        if request.metadata["agent"] == "planner.compose":
            return "final"
        return {"text": "ok"}

    orch = Orchestrator([Echo()], models=ladder(responder))
    result = await orch.run("plan it")

    assert result.status is RunStatus.SUCCEEDED
    assert "Ghost" in prompts[1]
    assert "'Echo'" in prompts[1]
    assert "cycle" in prompts[2]
    assert result.plan is not None
    assert [s.id for s in result.plan.subtasks] == ["a", "b"]
    assert result.final_answer == "final"


async def test_plan_invalid_after_repairs_carries_problems() -> None:
    def responder(request: ModelRequest) -> ScriptStep:
        return plan_json(draft("a", "a"))

    orch = Orchestrator([Echo()], models=ladder(responder))
    with pytest.raises(PlanInvalid) as info:
        await orch.run("hopeless")
    assert any("depends on itself" in p for p in info.value.problems)
    assert info.value.result is not None
    assert info.value.result.usage.requests == 3  # one plan + two repairs


async def test_given_plan_is_checked_precisely() -> None:
    orch = Orchestrator([Echo()], models=ladder(lambda r: {"text": "x"}))
    bad = Plan(
        subtasks=(
            Subtask(id="a", agent="Echo", instructions="a", arguments={"txt": 1}),
            Subtask(id="a", agent="Nope", instructions="b"),
            Subtask(
                id="c", agent="Echo", instructions="c", arguments={"text": "x"}, depends_on=("zzz",)
            ),
        )
    )
    with pytest.raises(PlanInvalid) as info:
        await orch.run("bad", plan=bad)
    text = "\n".join(info.value.problems)
    assert "duplicate subtask id 'a'" in text
    assert "unknown agent 'Nope'" in text
    assert "text: Field required" in text
    assert "unknown subtask 'zzz'" in text


async def test_budget_stops_the_run_mid_flight_and_keeps_finished_results() -> None:
    orch = Orchestrator(
        [Echo()],
        models=ladder(lambda r: {"text": "ok"}),
        limits=Limits(concurrency=1),
        budget=Budget(requests=4),
    )
    plan = Plan(subtasks=tuple(subtask(f"s{i}") for i in range(10)))
    result = await orch.run("costly", plan=plan, compose=False)

    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.error is not None
    assert "budget exceeded" in result.error
    assert len(result.outputs) == 4
    skipped = [r for r in result.subtasks.values() if r.status is SubtaskStatus.SKIPPED]
    failed = [r for r in result.subtasks.values() if r.status is SubtaskStatus.FAILED]
    assert len(skipped) + len(failed) == 6
    assert result.usage.requests == 4


async def test_dollar_budget_counts_against_the_published_prices() -> None:
    # Each call reserves its worst case (input bound + 50 output tokens) before it starts,
    # so the budget covers a few calls, not all ten.
    orch = Orchestrator(
        [Echo(max_output_tokens=50)],
        models=ladder(lambda r: {"text": "ok"}),
        limits=Limits(concurrency=1),
        budget=Decimal("0.0004"),
    )
    plan = Plan(subtasks=tuple(subtask(f"s{i}") for i in range(10)))
    result = await orch.run("costly", plan=plan, compose=False)
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert 0 < len(result.outputs) < 10


async def test_independent_failure_leaves_the_other_branch_intact() -> None:
    def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["subtask_id"] == "bad":
            return ProviderError("upstream exploded")
        return {"text": "good"}

    orch = Orchestrator([Echo()], models=ladder(responder), limits=Limits(max_decompose_depth=0))
    plan = Plan(
        subtasks=(
            subtask("bad"),
            subtask("after_bad", "bad"),
            subtask("ok"),
            subtask("after_ok", "ok"),
        )
    )
    result = await orch.run("two branches", plan=plan, compose=False)

    assert result.status is RunStatus.PARTIAL
    assert result.subtasks["bad"].status is SubtaskStatus.FAILED
    assert result.subtasks["after_bad"].status is SubtaskStatus.SKIPPED
    assert "bad failed" in (result.subtasks["after_bad"].error or "")
    assert result.outputs == {"ok": Text(text="good"), "after_ok": Text(text="good")}
    # retried once per tier, then up the ladder, then gave up at the top
    assert result.subtasks["bad"].tier_path == [
        Tier.NANO,
        Tier.NANO,
        Tier.MINI,
        Tier.MINI,
    ]


async def test_deadline_stops_cleanly_and_reports_usage() -> None:
    async def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["subtask_id"] == "slow":
            await anyio.sleep(10)
        return {"text": "ok"}

    orch = Orchestrator([Echo()], models=ladder(responder), limits=Limits(deadline=0.3))
    plan = Plan(subtasks=(subtask("fast"), subtask("slow"), subtask("after", "slow")))
    result = await orch.run("deadline", plan=plan, compose=False)

    assert result.status is RunStatus.DEADLINE
    assert result.outputs == {"fast": Text(text="ok")}
    assert result.subtasks["slow"].status is SubtaskStatus.SKIPPED
    assert result.usage.requests == 1


async def test_outer_cancel_scope_stops_the_run_and_reports_usage() -> None:
    events: list[RunEvent] = []

    async def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["subtask_id"] == "slow":
            await anyio.sleep(10)
        return {"text": "ok"}

    orch = Orchestrator([Echo()], models=ladder(responder))
    plan = Plan(subtasks=(subtask("fast"), subtask("slow")))
    with anyio.move_on_after(0.3):
        await orch.run("cancel me", plan=plan, compose=False, on_event=events.append)
    finished = events[-1]
    assert finished.name == "run.finished"
    assert finished.status == "cancelled"  # type: ignore[attr-defined]
    assert finished.usage.requests == 1  # type: ignore[attr-defined]


async def test_verifier_rejection_escalates() -> None:
    models: dict[Tier, Model] = {}

    def responder(request: ModelRequest) -> ScriptStep:
        return {"text": tier_of(request, models).value}

    models.update(ladder(responder))

    def only_mini(task: Subtask, output: Text) -> str | None:
        return None if output.text == "mini" else f"{output.text} is not good enough"

    orch = Orchestrator([Echo()], models=models, verify={"Echo": only_mini})
    result = await orch.run("check", plan=Plan(subtasks=(subtask("v"),)), compose=False)
    record = result.subtasks["v"]
    assert record.output == Text(text="mini")
    assert [a.outcome for a in record.attempts] == ["verifier_rejected", "succeeded"]
    mini = models[Tier.MINI]
    assert isinstance(mini, ScriptedModel)
    assert "nano is not good enough" in last_user(mini.requests[0])


async def test_stream_yields_typed_events_in_order() -> None:
    def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["agent"] == "planner":
            return plan_json(draft("a"), draft("b", "a"))
        if request.metadata["agent"] == "planner.compose":
            return "answer"
        return {"text": "ok"}

    orch = Orchestrator([Echo()], models=ladder(responder))
    async with orch.stream("go") as events:
        every = [e.name async for e in events]
    assert "model.delta" in every  # the planner's and executors' text as it streams
    names = [n for n in every if n != "model.delta"]
    assert names[0] == "run.started"
    assert names[1] == "plan.created"
    assert names[-1] == "run.finished"
    assert names.count("subtask.started") == 2
    assert names.count("subtask.finished") == 2
    assert names.index("subtask.finished") < names.index("subtask.started", 4)


async def test_result_serialises_to_json_and_renders_a_report() -> None:
    def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["agent"] == "planner":
            return plan_json(draft("a"))
        if request.metadata["agent"] == "planner.compose":
            return "the answer"
        return {"text": "ok"}

    result = await Orchestrator([Echo()], models=ladder(responder)).run("go")
    data = json.loads(result.to_json())
    assert data["status"] == "succeeded"
    assert data["subtasks"]["a"]["attempts"][0]["tier"] == "nano"
    assert data["subtasks"]["a"]["output"] == {"text": "ok"}
    assert Decimal(data["counterfactual_cost"]) > Decimal(data["cost"]) > 0
    report = result.report()
    assert "all-flagship would have cost" in report
    assert "the answer" in report


async def test_per_model_limit_caps_calls_to_one_model() -> None:
    in_flight = 0
    peak = 0

    async def responder(request: ModelRequest) -> ScriptStep:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return {"text": "ok"}

    orch = Orchestrator(
        [Echo()],
        models=ladder(responder),
        limits=Limits(concurrency=50, per_model={"gpt-5.4-nano": 3}),
    )
    plan = Plan(subtasks=tuple(subtask(f"s{i}") for i in range(30)))
    result = await orch.run("limited", plan=plan, compose=False)
    assert len(result.outputs) == 30
    assert peak == 3


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing handles it."""


async def test_journal_resumes_a_crashed_run_without_redoing_finished_work(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "run"
    calls: list[str] = []
    crash = True

    def responder(request: ModelRequest) -> ScriptStep:
        agent = request.metadata["agent"]
        if agent == "planner":
            return plan_json(draft("a"), draft("b", "a"), draft("c"))
        if agent == "planner.compose":
            return "all done"
        sid = request.metadata["subtask_id"]
        calls.append(sid)
        if sid == "b" and crash:
            raise Crash  # the process dies mid-run
        return {"text": f"out-{sid}"}

    orch = Orchestrator([Echo()], models=ladder(responder), limits=Limits(concurrency=1))
    with pytest.raises(BaseExceptionGroup) as info:
        await orch.run("resumable", journal=journal)
    assert info.group_contains(Crash)
    assert {"a", "b"} <= set(calls)
    finished_before = {c for c in calls if c != "b"}

    crash = False
    calls.clear()
    result = await orch.run("resumable", journal=journal)
    assert result.status is RunStatus.SUCCEEDED
    assert set(calls) == {"a", "b", "c"} - finished_before
    assert all(result.subtasks[s].restored for s in finished_before)
    assert result.outputs["a"] == Text(text="out-a")
    assert result.final_answer == "all done"


async def test_journal_of_another_goal_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "run"
    orch = Orchestrator([Echo()], models=ladder(lambda r: {"text": "x"}))
    await orch.run(
        "first goal", plan=Plan(subtasks=(subtask("a"),)), compose=False, journal=journal
    )
    with pytest.raises(UserError, match="another goal"):
        await orch.run("second goal", journal=journal)


class Reader(Echo):
    """Echo told to answer at once."""

    tool_choice = "none"


async def test_escalate_is_offered_only_to_agents_that_may_call_it_first() -> None:
    """An agent with tool_choice none is not shown escalate: it could not call it on its
    first turn, and the tool's text alone made the 0.5B misread what it was given."""
    offered: dict[str, set[str]] = {}

    async def responder(request: ModelRequest) -> ScriptStep:
        offered[request.metadata["agent"]] = {t.name for t in request.tools}
        return {"text": json.dumps({"text": "OK"})}

    orch = Orchestrator([Echo(), Reader()], models=ladder(responder))
    plan = Plan(subtasks=(subtask("a"), subtask("b", agent="Reader")))
    result = await orch.run("two", plan=plan, compose=False)

    assert result.status is RunStatus.SUCCEEDED
    assert offered == {"Echo": {"escalate"}, "Reader": set()}
