"""`tiered run --base-url`: the example through OpenAIModel and real HTTP on loopback.

A small OpenAI-compatible server on 127.0.0.1 answers as each agent would, so the whole
path a user with a key takes (planner, executors with tool calls, composition) runs
through the openai client's real HTTP stack.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tiered._cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triage.py"

PLAN = {
    "subtasks": [
        {
            "id": "triage",
            "agent": "TicketTriage",
            "instructions": "triage the ticket",
            "arguments": {"ticket": "My kettle, order A-1001, came late."},
            "depends_on": [],
            "plan_shaped": False,
            "stakes": "normal",
        },
        {
            "id": "check",
            "agent": "OrderCheck",
            "instructions": "look up A-1001",
            "arguments": {"order_id": "A-1001"},
            "depends_on": [],
            "plan_shaped": False,
            "stakes": "normal",
        },
        {
            "id": "refund",
            "agent": "RefundMath",
            "instructions": "work out the refund owed",
            "arguments": {"order_ids": ["A-1001"]},
            "depends_on": ["check"],
            "plan_shaped": False,
            "stakes": "normal",
        },
    ],
    "final_answer": "the refund owed",
}


ANSWER = {
    "total_refund_cents": 3499,
    "refunded_orders": ["A-1001"],
    "summary": "Refund 3499 cents for order A-1001.",
}


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """What each agent says, keyed on its system prompt and the transcript so far."""
    system = body["messages"][0]["content"]
    last = body["messages"][-1]
    if "You are the planner" in system:
        return {"content": json.dumps(PLAN)}
    if "final answer of a run" in system:
        return {"content": json.dumps(ANSWER)}
    if "support ticket" in system:
        return {"content": json.dumps({"category": "refund", "order_id": "A-1001"})}
    if "lookup_order" in system:
        if last["role"] == "tool":
            return {"content": last["content"]}
        return {
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "lookup_order",
                        "arguments": json.dumps({"order_id": "A-1001"}),
                    },
                }
            ]
        }
    if "refund_total" in system:
        if last["role"] == "tool":
            return {"content": json.dumps({"total_cents": 3499, "refunded": ["A-1001"]})}
        return {
            "tool_calls": [
                {
                    "id": "c2",
                    "type": "function",
                    "function": {
                        "name": "refund_total",
                        "arguments": json.dumps({"order_ids": ["A-1001"]}),
                    },
                }
            ]
        }
    raise AssertionError(f"unexpected request: {system[:80]}")


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(body)
        message = {"role": "assistant", "content": None, **_answer(body)}
        payload = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 1200,
                    "completion_tokens": 40,
                    "total_tokens": 1240,
                    "prompt_tokens_details": {"cached_tokens": 1024},
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_run_over_an_openai_compatible_server(
    server: str, capsys: pytest.CaptureFixture[str]
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
    planner_request = _Handler.seen[0]
    assert planner_request["model"] == "gpt-5.4"
    assert planner_request["response_format"]["json_schema"]["strict"] is True
    check_requests = [b for b in _Handler.seen if "lookup_order" in b["messages"][0]["content"]]
    assert check_requests[0]["model"] == "gpt-5.4-nano"
    assert check_requests[0]["tool_choice"] == "required"
    assert {t["function"]["name"] for t in check_requests[0]["tools"]} == {
        "lookup_order",
        "escalate",
    }
