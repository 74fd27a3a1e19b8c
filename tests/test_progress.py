"""The run's progress, live and plain: a scripted run's real events, replayed one at a time.

The live display renders to a string (`Console(file=StringIO(), force_terminal=True)`),
so each test reads what a user would see at that moment.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import anyio
import pytest
import structlog
from pydantic import BaseModel
from rich.console import Console

from tiered import (
    Agent,
    ComposeStarted,
    ModelRequest,
    ModelStreamed,
    Orchestrator,
    Plan,
    PlanCreated,
    RunEvent,
    RunFinished,
    RunStarted,
    ScriptedModel,
    Subtask,
    SubtaskRouted,
    SubtaskStarted,
    Tier,
    ToolCalled,
    ToolReturned,
    Usage,
    default_catalog,
)
from tiered._display import LiveDisplay
from tiered._logging import get_logger
from tiered._progress import Progress, RunView
from tiered.models import Model, ScriptStep

pytestmark = pytest.mark.anyio


class Text(BaseModel):
    text: str


class Echo(Agent[Text]):
    """Echoes its input."""

    instructions = "Echo the text."
    input_type = Text
    output_type = Text


def _ladder(responder: Callable[[ModelRequest], Any]) -> dict[Tier, Model]:
    cat = default_catalog()
    return {t: ScriptedModel(responder, spec=cat.for_tier(t)) for t in Tier}


async def _scripted_run() -> list[RunEvent]:
    """Four subtasks in flight at once, one rejected on nano and redone on mini, then a join."""

    async def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata.get("agent") == "planner":
            return "All five subtasks done."
        await anyio.sleep(0.05)
        return {"text": f"out-{request.metadata['subtask_id']}"}

    models = _ladder(responder)
    rejected: set[str] = set()

    def reject_b_once(subtask: Subtask, output: Text) -> str | None:
        if subtask.id == "b" and "b" not in rejected:
            rejected.add("b")
            return "wrong: b must say out-b twice"
        return None

    plan = Plan(
        subtasks=(
            *(Subtask(id=s, agent="Echo", instructions=s, arguments={"text": s}) for s in "abcd"),
            Subtask(
                id="join",
                agent="Echo",
                instructions="j",
                arguments={"text": "j"},
                depends_on=("a",),
            ),
        )
    )
    events: list[RunEvent] = []
    orch = Orchestrator([Echo()], models=models, verify={"Echo": reject_b_once})
    await orch.run("five echoes", plan=plan, on_event=events.append)
    return events


def _screen(display: LiveDisplay, width: int = 110) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)
    console.print(display.render())
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", str(out))


@pytest.fixture
def display() -> Iterator[LiveDisplay]:
    """A live display drawing into a string, with the wall clock stopped; stopped after."""
    console = Console(file=io.StringIO(), force_terminal=True, width=110)
    with LiveDisplay(console, view=RunView(clock=lambda: 0.0), auto_refresh=False) as live:
        yield live


async def test_counts_are_right_at_every_moment_of_a_real_run(display: LiveDisplay) -> None:
    events = await _scripted_run()
    started: set[str] = set()
    ended: set[str] = set()
    for event in events:
        display(event)
        sid = getattr(event, "subtask_id", None)
        if event.name == "subtask.started":
            started.add(str(sid))
        elif event.name in ("subtask.finished", "subtask.failed", "subtask.skipped"):
            ended.add(str(sid))
        in_flight = started - ended
        view = display.view
        assert view.count("running") == len(in_flight), event.name
        assert {r.id for r in view.running()} == in_flight
        assert view.ended == len(ended)
        if len(in_flight) >= 1 and event.name != "run.finished":
            screen = _screen(display)
            assert f"{len(in_flight)} running" in screen
            for sid_ in in_flight:
                assert re.search(rf"^\s*{sid_}\s+Echo\s+(nano|mini)", screen, re.M), screen
    assert started == ended == {"a", "b", "c", "d", "join"}


async def test_the_screen_after_routing_shows_the_four_in_flight(display: LiveDisplay) -> None:
    events = await _scripted_run()
    starts = 0
    for event in events:
        display(event)
        starts += event.name == "subtask.started"
        if starts == 4:
            break
    screen = _screen(display)
    assert "running subtasks" in screen
    assert "0/5 ended · 4 running · 0 queued · 1 waiting" in screen
    assert [line.split()[0] for line in screen.splitlines() if " Echo " in line] == list("abcd")


async def test_an_escalation_is_highlighted_and_the_end_is_summed_up(display: LiveDisplay) -> None:
    events = await _scripted_run()
    for event in events:
        display(event)
    screen = _screen(display)
    assert "b escalate nano -> mini" in screen
    assert "verifier_rejected" in screen
    assert "5/5 ended" in screen
    assert "1 escalated" in screen
    assert "succeeded" in screen
    note = next(n for n in display.view.notes if "b escalate" in n.text)
    assert note.kind == "rejected"  # a verifier rejection, drawn in red


def test_tool_calls_streamed_tokens_and_the_planner_show_live(display: LiveDisplay) -> None:
    stamp: dict[str, Any] = {"run_id": "r"}
    planner_counts = iter([70, 120])
    for ev in _hand_made_run(stamp):
        display(ev)
        if isinstance(ev, ModelStreamed) and ev.subtask_id is None:
            screen = _screen(display)
            assert screen.startswith("planning")
            assert f"planner: {next(planner_counts)} tokens streamed" in screen
        if isinstance(ev, ToolCalled):
            screen = _screen(display)
            # two calls streamed 40 and then 48 tokens; it started 2.0s before the tool call
            assert re.search(
                r"^\s*c1\s+OrderCheck\s+nano\s+2\.0s\s+88\s+calling lookup_order", screen, re.M
            )
    screen = _screen(display)
    assert "composing the final answer" in screen
    assert "c1 tool lookup_order failed" in screen
    assert "40% of the $0.01 budget" in screen


def _hand_made_run(stamp: dict[str, Any]) -> list[RunEvent]:
    """Events a streaming model and a tool produce, which the scripted model does not."""
    plan = Plan(subtasks=(Subtask(id="c1", agent="OrderCheck", instructions="x", arguments={}),))
    spent: dict[str, Any] = {"run_equivalent_cost": Decimal("0.004")}
    c1: dict[str, Any] = {"subtask_id": "c1", "agent": "OrderCheck"}
    nano = Tier.NANO
    return [
        RunStarted(elapsed_s=0.0, goal="check an order", budget_usd=Decimal("0.01"), **stamp),
        ModelStreamed(
            elapsed_s=0.4,
            subtask_id=None,
            agent="planner",
            tier=Tier.FLAGSHIP,
            text="{",
            output_tokens=70,
            **stamp,
        ),
        ModelStreamed(
            elapsed_s=0.5,
            subtask_id=None,
            agent="planner",
            tier=Tier.FLAGSHIP,
            text="{",
            output_tokens=120,
            **stamp,
        ),
        PlanCreated(elapsed_s=1.0, plan=plan, subtasks=1, **stamp),
        SubtaskRouted(elapsed_s=1.0, tier=nano, reason="nano", **c1, **stamp),
        SubtaskStarted(elapsed_s=1.0, tier=nano, **c1, **stamp),
        ModelStreamed(elapsed_s=1.5, tier=nano, text="..", output_tokens=40, **c1, **stamp),
        ModelStreamed(elapsed_s=1.8, tier=nano, text="..", output_tokens=30, **c1, **stamp),
        ModelStreamed(elapsed_s=2.0, tier=nano, text="..", output_tokens=48, **c1, **stamp),
        ToolCalled(
            elapsed_s=3.0,
            tool="lookup_order",
            call_id="1",
            arguments='{"order_id": "A-1001"}',
            **c1,
            **stamp,
        ),
        ToolReturned(
            elapsed_s=3.1,
            tool="lookup_order",
            call_id="1",
            is_error=True,
            duration_s=0.1,
            **c1,
            **spent,
            **stamp,
        ),
        ComposeStarted(elapsed_s=4.0, **spent, **stamp),
    ]


async def test_plain_lines_print_each_event_once_without_counters() -> None:
    events = await _scripted_run()
    out = io.StringIO()
    progress = Progress(out)
    for event in events:
        progress(event)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("planning: five echoes")
    assert "plan, 5 subtasks: a Echo; b Echo; c Echo; d Echo; join Echo after a" in lines[1]
    starts = [line for line in lines if " started on " in line]
    assert len(starts) == 6 - 1  # five subtasks, each started once (b's retry is an escalation)
    assert sum(" b escalate nano -> mini" in line for line in lines) == 1
    assert len(set(lines)) == len(lines)
    assert all("running" not in line for line in lines[:-1])  # no counters repeated per line
    assert re.match(r"\[\s*\d+\.\ds\] run succeeded in \d+\.\ds: 5/5 subtasks done", lines[-1])
    assert "1 escalation," in lines[-1]


def test_library_warnings_print_through_the_view_while_it_is_live(
    capsys: pytest.CaptureFixture[str],
) -> None:
    structlog.reset_defaults()
    out = io.StringIO()
    progress = Progress(out)
    stamp: dict[str, Any] = {"run_id": "r"}
    events = _hand_made_run(stamp)
    progress(events[0])
    get_logger(run_id="r").warning("retrying request", attempt=2)
    assert "warning: retrying request run_id=r attempt=2" in out.getvalue()
    assert capsys.readouterr().err == ""
    progress(
        RunFinished(
            elapsed_s=1.0,
            status="failed",
            usage=Usage(),
            cost=Decimal(0),
            equivalent_cost=Decimal(0),
            counterfactual_cost=Decimal(0),
            **stamp,
        )
    )
    get_logger().warning("between runs")
    assert "between runs" in capsys.readouterr().err

    console = Console(file=io.StringIO(), force_terminal=True, width=110)
    display = LiveDisplay(console, auto_refresh=False)
    display(events[0])  # the first event starts it
    get_logger().warning("rate limited", wait_s=1.5)
    printed = display.console.file.getvalue()  # type: ignore[attr-defined]
    assert "warning: rate limited wait_s=1.5" in printed
    assert printed.count("rate limited") == 1
    display.stop()
    get_logger().warning("after the view")
    assert "after the view" in capsys.readouterr().err
