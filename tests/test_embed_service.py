"""examples/embed_service.py under uvicorn on 127.0.0.1, driven by a real HTTP client:
events arrive while the run is going, and a client that hangs up cancels the run."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn

from orchestration_support import Echo
from tiered import ModelRequest, ScriptedModel, Tier, Workflow, default_catalog
from tiered.models import ScriptStep

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "embed_service", ROOT / "examples" / "embed_service.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Gate:
    """Subtask calls wait here (in the server's thread) until released or cancelled."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0
        self.release = threading.Event()

    async def responder(self, request: ModelRequest) -> ScriptStep:
        agent = request.metadata["agent"]
        if agent == "planner":
            return {
                "subtasks": [
                    {
                        "id": f"t{i}",
                        "agent": "Echo",
                        "instructions": "echo it",
                        "arguments": {"text": f"ticket {i}"},
                        "depends_on": [],
                        "plan_shaped": False,
                        "stakes": "normal",
                    }
                    for i in range(3)
                ],
                "final_answer": "one line per ticket",
            }
        if agent == "planner.compose":
            return "three tickets echoed"
        self.started += 1
        try:
            # a threading.Event, set from the test's thread: polled, not awaited
            while not self.release.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.01)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        return {"text": "ok"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def service() -> Iterator[tuple[str, Gate]]:
    gate = Gate()
    cat = default_catalog()
    models = {t: ScriptedModel(gate.responder, spec=cat.for_tier(t)) for t in Tier}
    workflow = Workflow(executors=[Echo()], goal="Echo three tickets")
    app = _example().create_app(workflow, models=models)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", gate
    finally:
        gate.release.set()
        server.should_exit = True
        thread.join(timeout=10)


async def _until(condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 (state changed by the server's thread)
            await anyio.sleep(0.01)


async def _events(lines: Any) -> Any:
    name = None
    async for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


async def test_events_stream_while_the_run_is_going(service: tuple[str, Gate]) -> None:
    url, gate = service
    seen: list[str] = []
    async with (
        httpx2.AsyncClient(timeout=10) as client,
        client.stream("POST", f"{url}/runs", json={"goal": "Triage the inbox"}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        async for name, data in _events(response.aiter_lines()):
            seen.append(name)
            assert data["name"] == name
            if name == "subtask.started" and seen.count(name) == 3:
                await _until(lambda: gate.started == 3)
                assert "subtask.finished" not in seen  # the subtasks are still running
                gate.release.set()
            if name == "run.finished":
                assert data["result"]["status"] in ("succeeded", "answer_rejected", "partial")
    assert seen[0] == "run.started"
    assert seen.count("subtask.finished") == 3
    assert seen[-1] == "run.finished"


async def test_a_client_that_hangs_up_cancels_the_runs_model_calls(
    service: tuple[str, Gate],
) -> None:
    url, gate = service
    async with (
        httpx2.AsyncClient(timeout=10) as client,
        client.stream("POST", f"{url}/runs", json={"goal": "Triage the inbox"}) as response,
    ):
        async for name, _ in _events(response.aiter_lines()):
            if name == "subtask.started":
                await _until(lambda: gate.started == 3)
                break  # hang up with three model calls in flight
    await _until(lambda: gate.cancelled == 3)


async def test_a_request_without_a_goal_gets_a_400_that_says_what_to_send(
    service: tuple[str, Gate],
) -> None:
    url, _ = service
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/runs", json={"nope": 1})
    assert response.status_code == 400
    assert "goal" in response.json()["error"]
