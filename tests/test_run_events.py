"""Events a product can ship: JSON-safe, carrying outputs and tool calls, streamed with
backpressure, and a stream that is safe to leave early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from orchestration_support import Echo, Text, draft, ladder, plan_json, subtask
from tiered import (
    Agent,
    Limits,
    ModelRequest,
    Orchestrator,
    Plan,
    RunContext,
    RunStatus,
    Tool,
)
from tiered.models import ScriptStep, call

pytestmark = pytest.mark.anyio


class Lookup(Tool):
    """Look a word up."""

    class Args(BaseModel):
        word: str

    async def run(self, args: Args, ctx: RunContext[Any]) -> str:
        return args.word.upper()


class Looker(Agent[Text]):
    """Looks its word up with a tool."""

    input_type = Text
    output_type = Text
    tools = (Lookup(),)


def responder(request: ModelRequest) -> ScriptStep:
    agent = request.metadata["agent"]
    if agent == "planner":
        return plan_json(draft("a", agent="Looker"), draft("b", "a"))
    if agent == "planner.compose":
        return "the answer"
    if agent == "Looker" and len(request.messages) == 2:
        return call("lookup", {"word": "x"})
    return {"text": "ok"}


async def test_every_event_serialises_to_json_and_carries_what_a_product_needs() -> None:
    orch = Orchestrator([Echo(), Looker()], models=ladder(responder))
    async with orch.stream("go") as events:
        seen = [e async for e in events]
    dumped = [json.loads(json.dumps(e.to_dict())) for e in seen]
    names = [d["name"] for d in dumped]
    assert names[0] == "run.started"
    assert names[-1] == "run.finished"
    assert {"tool.called", "tool.returned", "compose.started", "compose.finished"} <= set(names)
    called = next(d for d in dumped if d["name"] == "tool.called")
    assert called["tool"] == "lookup"
    assert called["subtask_id"] == "a"
    assert json.loads(called["arguments"]) == {"word": "x"}
    finished = [d for d in dumped if d["name"] == "subtask.finished"]
    assert [f["output"] for f in finished] == [{"text": "ok"}, {"text": "ok"}]
    assert all(isinstance(f["cost"], str) for f in finished)  # Decimals as exact strings
    plan = next(d for d in dumped if d["name"] == "plan.created")["plan"]
    assert [s["id"] for s in plan["subtasks"]] == ["a", "b"]
    final = dumped[-1]
    assert final["status"] == "succeeded"
    assert final["result"]["final_answer"] == "the answer"
    assert events.result is not None
    assert events.result.status is RunStatus.SUCCEEDED


async def test_a_slow_consumer_holds_the_run_back() -> None:
    requests = 0

    def counting(request: ModelRequest) -> ScriptStep:
        nonlocal requests
        requests += 1
        return {"text": "ok"}

    plan = Plan(subtasks=tuple(subtask(f"s{i}") for i in range(200)))
    orch = Orchestrator([Echo()], models=ladder(counting), limits=Limits(concurrency=1))
    async with orch.stream("go", plan=plan, compose=False, max_buffer=8) as events:
        seen = 0
        async for _ in events:
            seen += 1
            if seen == 3:
                await anyio.sleep(0.3)  # the run could finish all 200 in this time
                held_at = requests
        assert seen > 200
    assert held_at <= 8


async def test_leaving_the_stream_early_cancels_the_runs_model_calls() -> None:
    cancelled = 0

    async def slow(request: ModelRequest) -> ScriptStep:
        nonlocal cancelled
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            cancelled += 1
            raise
        return {"text": "ok"}

    plan = Plan(subtasks=tuple(subtask(f"s{i}") for i in range(4)))
    orch = Orchestrator([Echo()], models=ladder(slow), limits=Limits(concurrency=4))
    with anyio.fail_after(5):
        async with orch.stream("go", plan=plan, compose=False) as events:
            async for event in events:
                if event.name == "subtask.started":
                    await anyio.sleep(0.05)  # let the other calls start too
                    break
    assert cancelled == 4


async def test_the_stream_takes_a_journal_like_run(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    plan = Plan(subtasks=(subtask("a"),))
    orch = Orchestrator([Echo()], models=ladder(lambda r: {"text": "ok"}))
    async with orch.stream("go", plan=plan, compose=False, journal=journal) as events:
        [e async for e in events]
    async with orch.stream("go", compose=False, journal=journal) as again:
        finished = [e async for e in again if e.name == "subtask.finished"]
    assert [e.restored for e in finished] == [True]  # type: ignore[attr-defined]


async def test_a_run_that_raises_delivers_its_last_event_then_raises() -> None:
    from tiered import PlanInvalid

    orch = Orchestrator([Echo()], models=ladder(lambda r: {"text": "ok"}))
    bad = Plan(subtasks=(subtask("a", "missing"),))
    names: list[str] = []
    with pytest.raises(PlanInvalid):
        async with orch.stream("go", plan=bad) as events:
            names = [e.name async for e in events]
    assert names == ["run.started", "run.finished"]
