"""Cancelling a run stops its tools: each built-in tool, and a sync `@tool` stuck in its
thread, gives control back within a second of the cancel."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tiered import Agent, Ledger, RunContext, Tool, tool
from tiered._tool import ToolSet
from tiered.models import ScriptedModel, call
from tiered.tools import (
    Calculator,
    HttpFetch,
    ListFiles,
    ReadFile,
    SqlQuery,
    TextSearch,
    WriteFile,
)
from tiered.tools._sandbox import Sandbox

pytestmark = pytest.mark.anyio

CANCEL_AFTER = 0.2


def _ctx() -> RunContext[Any]:
    return RunContext(deps=None, agent="t", ledger=Ledger())


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Set at teardown, so every thread a test leaves blocked can finish."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def hung_mount(monkeypatch: pytest.MonkeyPatch, gate: threading.Event) -> None:
    """Every sandbox open blocks, as an open on a dead NFS mount does."""

    def stuck(self: Sandbox, path: str, flags: int, *a: Any, **kw: Any) -> tuple[int, str]:
        gate.wait(30)
        raise OSError("the mount never answered")

    monkeypatch.setattr(Sandbox, "open", stuck)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


async def _elapsed_after_cancel(t: Tool, arguments: str) -> float:
    tools = ToolSet([t])
    started = time.perf_counter()
    with anyio.move_on_after(CANCEL_AFTER) as scope:
        await tools.run_call(call(t.name, arguments), _ctx())
    assert scope.cancelled_caught, f"{t.name} finished before the cancel: the test proves nothing"
    return time.perf_counter() - started - CANCEL_AFTER


@pytest.mark.usefixtures("hung_mount")
@pytest.mark.parametrize(
    ("make", "arguments"),
    [
        (ReadFile, '{"path": "a.txt", "offset": 0}'),
        (ListFiles, '{"path": ".", "recursive": true}'),
        (
            lambda root: WriteFile(root, writable=True),
            '{"path": "a.txt", "content": "x", "append": false}',
        ),
    ],
    ids=["read_file", "list_files", "write_file"],
)
async def test_file_tools_on_a_hung_mount_stop_at_the_cancel(
    tmp_path: Path, make: Any, arguments: str
) -> None:
    assert await _elapsed_after_cancel(make(tmp_path), arguments) < 1


async def test_http_fetch_from_a_silent_server_stops_at_the_cancel(silent_server: int) -> None:
    fetch = HttpFetch([f"127.0.0.1:{silent_server}"])
    url = f'{{"url": "http://127.0.0.1:{silent_server}/"}}'
    assert await _elapsed_after_cancel(fetch, url) < 1


async def test_a_long_sql_query_stops_at_the_cancel(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    sqlite3.connect(db).close()
    endless = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
    )
    assert await _elapsed_after_cancel(SqlQuery(db), f'{{"sql": "{endless}"}}') < 1


async def test_text_search_over_a_large_corpus_stops_at_the_cancel(
    monkeypatch: pytest.MonkeyPatch, gate: threading.Event
) -> None:
    search = TextSearch({"a": "alpha beta", "b": "beta gamma"})
    monkeypatch.setattr(search, "search", lambda query, top_k: gate.wait(30))  # a huge corpus
    assert await _elapsed_after_cancel(search, '{"query": "beta", "top_k": 5}') < 1


async def test_the_slowest_calculator_expression_is_far_under_a_second() -> None:
    # pure arithmetic within fixed bounds: it cannot run long enough to need a cancel
    tools = ToolSet([Calculator()])
    for expression in (
        "9**9**9",
        "2**4095 * 2**4095",
        "-" * 990 + "1",
        "(" * 150 + "1" + ")" * 150,
    ):
        started = time.perf_counter()
        await tools.run_call(call("calculator", {"expression": expression}), _ctx())
        assert time.perf_counter() - started < 0.5


async def test_a_sync_tool_stuck_in_its_thread_is_abandoned_when_the_run_is_cancelled(
    gate: threading.Event,
) -> None:
    finished: list[str] = []

    @tool(timeout=None)
    def stuck() -> str:
        """Blocks its worker thread."""
        gate.wait(30)
        finished.append("ran to the end")
        return "late"

    agent = Agent(name="worker", tools=[stuck])
    model = ScriptedModel([call("stuck"), "never reached"])
    started = time.perf_counter()
    with anyio.move_on_after(CANCEL_AFTER) as scope:
        await agent.run("go", model=model)
    assert scope.cancelled_caught
    assert time.perf_counter() - started - CANCEL_AFTER < 1
    assert finished == []  # the thread is still blocked; its result will be discarded
    assert len(model.requests) == 1


async def test_a_timeout_raised_by_the_tool_is_its_failure_not_ours() -> None:
    @tool(timeout=5)
    async def upstream() -> str:
        """Calls a service that times out."""
        raise TimeoutError("the payments API did not answer")

    result = await ToolSet([upstream]).run_call(call("upstream"), _ctx())
    assert result.is_error
    assert "failed: TimeoutError: the payments API did not answer" in result.content
    assert "timed out after" not in result.content
