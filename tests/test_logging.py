"""What an agent run logs, and that secrets never reach a log event."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from tiered import (
    Agent,
    ModelRetry,
    RunContext,
    ScriptedModel,
    default_catalog,
    redact_secrets,
    tool,
)
from tiered._logging import get_logger
from tiered.models import call

pytestmark = pytest.mark.anyio

API_KEY = "sk-proj-Abc123_secretsecretsecret"
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig"


@dataclass
class Deps:
    api_key: str


@tool
def fetch(ctx: RunContext[Deps], url: str) -> str:
    """Fetch a URL with the caller's key."""
    raise PermissionError(f"401 for {url} with key {ctx.deps.api_key}")


@tool
def check(ctx: RunContext[Deps]) -> str:
    """Check the key."""
    raise ModelRetry(f"header was Authorization: {BEARER}")


@tool
def ping(ctx: RunContext[Deps]) -> str:
    """Ping."""
    ctx.log.info("ping.sent", turn=ctx.turn)
    return "pong"


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Events logged during the test; structlog is left unconfigured again if it was."""
    configured = structlog.is_configured()
    with capture_logs() as captured:
        yield captured
    if not configured:  # capture_logs leaves structlog "configured", printing to stdout
        structlog.reset_defaults()


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_a_run_logs_model_responses_and_tool_calls(
    logs: list[MutableMapping[str, Any]],
) -> None:
    spec = default_catalog()["gpt-5.4-nano"]
    agent = Agent(name="logged", tools=[ping, fetch])
    model = ScriptedModel(
        [[call("ping"), call("fetch", {"url": "https://x.test"})], "done"], spec=spec
    )
    result = await agent.run("go", deps=Deps(api_key="k"), model=model, subtask_id="s1")

    responses = _events(logs, "model.response")
    assert [e["turn"] for e in responses] == [1, 2]
    for event in responses:
        assert event["model"] == "gpt-5.4-nano"
        assert event["tier"] == "nano"
        assert event["input_tokens"] > 0
        assert event["output_tokens"] > 0
        assert isinstance(event["latency_ms"], float)
        assert event["agent"] == "logged"
        assert event["subtask_id"] == "s1"
    assert sum(e["input_tokens"] for e in responses) == result.usage.input_tokens
    assert sum(e["output_tokens"] for e in responses) == result.usage.output_tokens
    assert sum(Decimal(e["cost_usd"]) for e in responses) == result.cost > 0

    (own,) = _events(logs, "ping.sent")  # a tool's own events carry the run's bindings
    assert (own["agent"], own["subtask_id"], own["turn"]) == ("logged", "s1", 1)
    (tool_call,) = _events(logs, "tool.call")
    assert tool_call["tool"] == "ping"
    assert tool_call["agent"] == "logged"
    assert isinstance(tool_call["latency_ms"], float)
    (tool_error,) = _events(logs, "tool.error")
    assert tool_error["tool"] == "fetch"
    assert "PermissionError: 401 for https://x.test" in tool_error["error"]
    assert tool_error["log_level"] == "info"


async def test_cost_is_logged_per_response(logs: list[MutableMapping[str, Any]]) -> None:
    spec = default_catalog()["gpt-5.4-nano"]
    result = await Agent(name="c").run("go", model=ScriptedModel(["done"], spec=spec))
    (event,) = _events(logs, "model.response")
    assert event["cost_usd"] == str(result.cost)
    assert event["equivalent_cost_usd"] == str(result.equivalent_cost)


async def test_an_api_key_never_reaches_a_log_event(
    logs: list[MutableMapping[str, Any]],
) -> None:
    agent = Agent(name="secretive", instructions=f"Use {API_KEY} carefully.", tools=[fetch, check])
    model = ScriptedModel(
        [
            [call("fetch", {"url": f"https://x.test/?key={API_KEY}"}), call("check")],
            f"The key is {API_KEY}",
        ]
    )
    result = await agent.run(f"call with {API_KEY}", deps=Deps(api_key=API_KEY), model=model)
    assert API_KEY in result.output  # the run itself is untouched
    assert _events(logs, "tool.error")
    text = repr(logs)
    assert API_KEY not in text
    assert "secretsecret" not in text
    assert "eyJhbGciOiJIUzI1NiJ9" not in text


def test_redact_secrets_blanks_secret_keys() -> None:
    event: MutableMapping[str, Any] = {
        "event": "x",
        "api_key": "abc",
        "Authorization": "anything",
        "headers": {"Accept": "json"},
        "password": "p",
        "input_tokens": 12,
        "nested": {"api_key": "abc", "ok": 1, "headers": {"X-Trace": "t"}},
    }
    out = redact_secrets(None, "info", event)
    assert out == {
        "event": "x",
        "api_key": "[redacted]",
        "Authorization": "[redacted]",
        "headers": "[redacted]",
        "password": "[redacted]",
        "input_tokens": 12,
        "nested": {"api_key": "[redacted]", "ok": 1, "headers": "[redacted]"},
    }


def test_redact_secrets_blanks_key_and_bearer_values() -> None:
    event: MutableMapping[str, Any] = {
        "event": f"failed with {API_KEY}",
        "error": f"got {BEARER} back",
        "args": [f"x {API_KEY}", ("t", BEARER)],
        "count": 3,
        "plain": "sk-no",  # too short to be a key
    }
    out = redact_secrets(None, "info", event)
    assert out == {
        "event": "failed with [redacted]",
        "error": "got [redacted] back",
        "args": ["x [redacted]", ("t", "[redacted]")],
        "count": 3,
        "plain": "sk-no",
    }


@pytest.fixture
def unconfigured() -> Iterator[None]:
    """structlog as an application that never configured it leaves it."""
    saved = structlog.get_config() if structlog.is_configured() else None
    structlog.reset_defaults()
    yield
    if saved is not None:
        structlog.configure(**saved)


@pytest.mark.usefixtures("unconfigured")
def test_unconfigured_library_prints_only_warnings_and_redacts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = get_logger(agent="quiet", api_key=API_KEY)
    log.info("tool.error", error=f"key {API_KEY}")
    log.warning("model.retry", error=f"sent {BEARER}", headers={"Authorization": BEARER})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "tool.error" not in captured.err
    assert "model.retry" in captured.err
    assert "quiet" in captured.err
    assert API_KEY not in captured.err
    assert "eyJhbGciOiJIUzI1NiJ9" not in captured.err
