"""`tiered run --base-url`: the example through OpenAIModel and real HTTP on loopback.

The OpenAI emulator serves on 127.0.0.1 and answers as each agent would, so the whole
path a user with a key takes (planner, executors with tool calls, composition) runs
through the openai client's real HTTP stack, and every request is validated as OpenAI
would (SDK request types, name patterns, strict-mode schemas, parameter rules).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from openai_emulator import Call, Emulator, Reply, Seen, Tokens
from tiered import RunEvent
from tiered._cli import main
from tiered._display import LiveDisplay

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triage.py"

PLAN = {
    "subtasks": [
        {
            "id": "triage",
            "agent": "TicketTriage",
            "arguments": {"ticket": "My kettle, order A-1001, came late."},
        },
        {
            "id": "check",
            "agent": "OrderCheck",
            "arguments": {"order_id": "A-1001"},
        },
        {
            "id": "refund",
            "agent": "RefundMath",
            "arguments": {"order_ids": ["A-1001"]},
        },
    ],
}


USAGE = Tokens(input=1200, output=40, cached=1024)
ANSWER = {
    "total_refund_cents": 3499,
    "refunded_orders": ["A-1001"],
    "summary": "Refund 3499 cents for order A-1001.",
}


def _answer(seen: Seen) -> Reply:
    """What each agent says, keyed on its instructions and the transcript so far."""
    system = seen.system
    result = seen.tool_output
    if "You are the planner" in system:
        return Reply(text=json.dumps(PLAN), usage=USAGE)
    if "final answer of a run" in system:
        return Reply(text=json.dumps(ANSWER), usage=USAGE)
    if "support ticket" in system:
        return Reply(text=json.dumps({"category": "refund", "order_id": "A-1001"}), usage=USAGE)
    # OrderCheck and RefundMath end at their tool's result (`output_tool`): one call each
    assert result is None, "a tool agent was asked to copy its tool's result"
    if "lookup_order" in system:
        return Reply(calls=[Call("lookup_order", {"order_id": "A-1001"}, id="c1")], usage=USAGE)
    if "refund_total" in system:
        return Reply(calls=[Call("refund_total", {"order_ids": ["A-1001"]}, id="c2")], usage=USAGE)
    raise AssertionError(f"unexpected request: {system[:80]}")


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(script=_answer)


@pytest.fixture
def server(emulator: Emulator) -> Iterator[str]:
    with emulator.serve() as base_url:
        yield base_url


def test_run_over_an_openai_compatible_server(
    server: str, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    models = "nano=gpt-5.4-nano,mini=gpt-5.4-mini,flagship=gpt-5.4"
    code = main(["run", str(EXAMPLE), "--base-url", server, "--models", models, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"OpenAI-compatible server at {server}" in captured.err
    assert "plan, 3 subtasks: triage TicketTriage; check OrderCheck" in captured.err  # progress
    data = json.loads(captured.out)
    assert data["status"] == "succeeded"
    assert data["final_answer"] == ANSWER
    assert data["subtasks"]["check"]["output"]["price_cents"] == 3499
    assert [a["tier"] for a in data["subtasks"]["check"]["attempts"]] == ["nano"]
    assert data["models"] == {"nano": "gpt-5.4-nano", "mini": "gpt-5.4-mini", "flagship": "gpt-5.4"}
    assert data["usage"]["cached_input_tokens"] > 0
    assert not emulator.rejected, [e.message for e in emulator.rejected]
    assert {s.api for s in emulator.requests} == {"chat"}
    planner_request = emulator.bodies[0]
    assert planner_request["model"] == "gpt-5.4"
    assert planner_request["response_format"]["json_schema"]["strict"] is True
    check_requests = [s.body for s in emulator.requests if "lookup_order" in s.system]
    assert check_requests[0]["model"] == "gpt-5.4-nano"
    assert check_requests[0]["tool_choice"] == {
        "type": "function",
        "function": {"name": "lookup_order"},
    }
    assert {t["function"]["name"] for t in check_requests[0]["tools"]} == {"lookup_order"}


def test_journaled_runs_learn_routing_stats_that_later_runs_load(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = "nano=gpt-5.4-nano,mini=gpt-5.4-mini,flagship=gpt-5.4"
    runs = tmp_path / "runs"
    for name in ("first", "second"):
        argv = ["run", str(EXAMPLE), "--base-url", server, "--models", models, "--quiet"]
        assert main([*argv, "--journal", str(runs / name)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    stats_file = runs / "routing-stats.json"  # beside the journals, shared by both runs
    cells = {(c["agent"], c["tier"]): c for c in json.loads(stats_file.read_text())["cells"]}
    assert set(cells) == {("OrderCheck", "nano"), ("RefundMath", "nano"), ("TicketTriage", "nano")}
    assert all(c["n"] == 2 and c["failures"] == 0 for c in cells.values())  # both runs counted
    assert main(["routing", str(runs / "second")]) == 0
    table = capsys.readouterr().out
    assert "half-life 25 observations" in table
    row = next(line.split() for line in table.splitlines() if line.startswith("OrderCheck"))
    assert row[:3] == ["OrderCheck", "nano", "-"]
    assert row[5] == "2"  # observations
    assert row[7].startswith("$")  # mean dollars per attempt, learned with the outcomes


class _Recording(LiveDisplay):
    """The CLI's live view drawing into a string; keeps a frame at every planner delta."""

    def __init__(self) -> None:
        console = Console(file=io.StringIO(), force_terminal=True, width=110, color_system=None)
        super().__init__(console, auto_refresh=False)
        self.planning_frames: list[str] = []

    def __call__(self, event: RunEvent) -> None:
        super().__call__(event)
        if event.name == "model.delta" and self.view.phase == "planning":
            frame = io.StringIO()
            Console(file=frame, width=110, color_system=None).print(self.render())
            self.planning_frames.append(frame.getvalue())


def test_the_live_view_shows_the_planner_streaming_while_it_plans(
    server: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = _Recording()
    monkeypatch.setattr("tiered._cli_run._live_view", lambda: view)  # as on a terminal
    models = "nano=gpt-5.4-nano,mini=gpt-5.4-mini,flagship=gpt-5.4"
    code = main(["run", str(EXAMPLE), "--base-url", server, "--models", models, "--json"])
    assert code == 0
    assert emulator.bodies[0]["model"] == "gpt-5.4"
    assert all(body.get("stream") is True for body in emulator.bodies)  # every call streamed
    assert view.planning_frames, "no model.delta reached the view while planning"
    counts = [
        int(m.group(1).replace(",", ""))
        for frame in view.planning_frames
        if (m := re.search(r"planning .*planner: ([\d,]+) tokens streamed", frame))
    ]
    assert len(counts) == len(view.planning_frames)
    assert counts == sorted(counts)  # growing as the plan streams in
    assert counts[-1] > counts[0] > 0
    assert view.view.status == "succeeded"


def test_plain_lines_do_not_ask_the_models_to_stream(
    server: str, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    models = "nano=gpt-5.4-nano,mini=gpt-5.4-mini,flagship=gpt-5.4"
    assert main(["run", str(EXAMPLE), "--base-url", server, "--models", models]) == 0
    assert "planner: " not in capsys.readouterr().err
    assert not any(body.get("stream") for body in emulator.bodies)  # no one would see it
