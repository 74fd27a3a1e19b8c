"""`ScriptedModel`, the test double users drive from Python, and `RetryingModel` around it."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from pydantic import BaseModel
from structlog.testing import capture_logs

from tiered import (
    AssistantMessage,
    AuthenticationFailed,
    ModelRequest,
    ModelResponse,
    ModelTimeout,
    RateLimited,
    ScriptedModel,
    SystemMessage,
    Tier,
    ToolCall,
    Usage,
    UserError,
    UserMessage,
    default_catalog,
)
from tiered.models import Model, RetryingModel, ScriptStep, call

pytestmark = pytest.mark.anyio


def _request(text: str = "hello") -> ModelRequest:
    return ModelRequest(messages=(SystemMessage(content="sys"), UserMessage(content=text)))


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Events logged during the test; structlog is left unconfigured again if it was."""
    configured = structlog.is_configured()
    with capture_logs() as captured:
        yield captured
    if not configured:  # capture_logs leaves structlog "configured", printing to stdout
        structlog.reset_defaults()


class Answer(BaseModel):
    value: int


# --- ScriptedModel ----------------------------------------------------------------------


async def test_list_script_answers_in_order_and_keeps_requests() -> None:
    done = ModelResponse(
        message=AssistantMessage(content="exact"),
        usage=Usage(input_tokens=7, output_tokens=3, requests=1),
        model_name="custom",
    )
    model = ScriptedModel(
        [
            "text",
            {"a": 1},
            Answer(value=2),
            call("lookup", {"id": "A1"}, id="c1"),
            [call("x", id="c2"), call("y", "{bad json", id="c3")],
            AssistantMessage(content="whole message"),
            done,
        ]
    )
    requests = [_request(str(i)) for i in range(7)]
    responses = [await model.request(r) for r in requests]
    assert model.requests == requests
    assert [r.message.content for r in responses] == [
        "text",
        '{"a": 1}',
        '{"value":2}',
        None,
        None,
        "whole message",
        "exact",
    ]
    assert responses[3].message.tool_calls == (
        ToolCall(id="c1", name="lookup", arguments='{"id": "A1"}'),
    )
    assert responses[4].message.tool_calls == (
        ToolCall(id="c2", name="x", arguments="{}"),
        ToolCall(id="c3", name="y", arguments="{bad json"),
    )
    assert [r.finish_reason for r in responses[:5]] == [
        "stop",
        "stop",
        "stop",
        "tool_calls",
        "tool_calls",
    ]
    assert responses[-1] is done
    model.assert_complete()


async def test_usage_is_estimated_per_request() -> None:
    model = ScriptedModel(["a" * 400])
    response = await model.request(_request("b" * 400))
    assert response.usage.requests == 1
    assert response.usage.output_tokens == 100
    assert response.usage.input_tokens > 100
    assert response.model_name == "scripted"


async def test_spec_name_and_tier() -> None:
    nano = default_catalog()["gpt-5.4-nano"]
    assert ScriptedModel([], spec=nano).spec is nano
    custom = ScriptedModel([], name="fake-mini", tier=Tier.MINI).spec
    assert (custom.name, custom.tier) == ("fake-mini", Tier.MINI)
    assert custom.cost(Usage(input_tokens=10**6, output_tokens=10**6)) == 0
    assert isinstance(ScriptedModel([]), Model)


async def test_sync_function_script_sees_each_request() -> None:
    def respond(request: ModelRequest) -> ScriptStep:
        last = request.messages[-1]
        assert isinstance(last, UserMessage)
        return f"echo {last.content}"

    model = ScriptedModel(respond)
    assert (await model.request(_request("one"))).message.content == "echo one"
    assert (await model.request(_request("two"))).message.content == "echo two"
    model.assert_complete()  # a function script never has steps left over


async def test_async_function_script() -> None:
    async def respond(request: ModelRequest) -> ScriptStep:
        return {"n": len(request.messages)}

    model = ScriptedModel(respond)
    assert (await model.request(_request())).message.content == '{"n": 2}'


async def test_function_script_can_raise() -> None:
    def respond(request: ModelRequest) -> ScriptStep:
        return RateLimited(model="m", retry_after=1)

    with pytest.raises(RateLimited):
        await ScriptedModel(respond).request(_request())


async def test_exception_steps_are_raised_in_turn() -> None:
    model = ScriptedModel([ModelTimeout("slow", model="m"), "after"])
    with pytest.raises(ModelTimeout, match="slow"):
        await model.request(_request())
    assert (await model.request(_request())).message.content == "after"
    assert len(model.requests) == 2


async def test_running_out_of_steps_is_a_user_error() -> None:
    model = ScriptedModel(["only"], name="short")
    await model.request(_request())
    with pytest.raises(UserError, match=r"'short' ran out of steps after 1 requests"):
        await model.request(_request())


async def test_assert_complete_reports_unused_steps() -> None:
    model = ScriptedModel(["a", "b", "c"], name="long")
    await model.request(_request())
    with pytest.raises(AssertionError, match=r"'long': 2 step\(s\) unused"):
        model.assert_complete()


async def test_unsupported_step_is_a_user_error() -> None:
    model = ScriptedModel([42])  # type: ignore[list-item]
    with pytest.raises(UserError, match="cannot reply with int"):
        await model.request(_request())


def test_call_ids_are_unique_unless_given() -> None:
    a, b = call("t"), call("t")
    assert a.id != b.id
    assert call("t", id="mine").id == "mine"
    assert call("t", None).arguments == "{}"


# --- RetryingModel ----------------------------------------------------------------------


async def test_retries_rate_limits_honouring_retry_after(
    logs: list[MutableMapping[str, Any]],
) -> None:
    inner = ScriptedModel(
        [RateLimited(model="m", retry_after=0.01), RateLimited(model="m", retry_after=0.02), "ok"]
    )
    model = RetryingModel(inner, max_attempts=3)
    response = await model.request(_request())
    assert response.message.content == "ok"
    assert len(inner.requests) == 3
    retries = [e for e in logs if e["event"] == "model.retry"]
    assert [(e["attempt"], e["error"], e["delay_s"]) for e in retries] == [
        (1, "RateLimited", 0.01),
        (2, "RateLimited", 0.02),
    ]
    assert model.spec is inner.spec


async def test_retry_after_beyond_the_patience_is_raised_at_once(
    logs: list[MutableMapping[str, Any]],
) -> None:
    inner = ScriptedModel([RateLimited(model="m", retry_after=3600), "never"])
    with pytest.raises(RateLimited):
        await RetryingModel(inner, max_delay=0.01, rate_limit_patience=60).request(_request())
    assert len(inner.requests) == 1
    assert [e for e in logs if e["event"] == "model.retry"] == []


async def test_backoff_without_retry_after(logs: list[MutableMapping[str, Any]]) -> None:
    inner = ScriptedModel([ModelTimeout("slow"), RateLimited(model="m"), "ok"])
    response = await RetryingModel(inner, base_delay=0.001).request(_request())
    assert response.message.content == "ok"
    delays = [e["delay_s"] for e in logs if e["event"] == "model.retry"]
    assert len(delays) == 2
    assert all(0 <= d <= 0.01 for d in delays)


async def test_gives_up_after_max_attempts() -> None:
    last = ModelTimeout("slow again")
    inner = ScriptedModel([ModelTimeout("slow"), last, "never"])
    with pytest.raises(ModelTimeout) as info:
        await RetryingModel(inner, max_attempts=2, base_delay=0.001).request(_request())
    assert info.value is last
    assert len(inner.requests) == 2


async def test_rate_limits_do_not_use_up_the_attempts() -> None:
    storm = [RateLimited(model="m", retry_after=0.001) for _ in range(6)]
    inner = ScriptedModel([*storm, "after the storm"])
    response = await RetryingModel(inner, max_attempts=2).request(_request())
    assert response.message.content == "after the storm"
    assert len(inner.requests) == 7


async def test_does_not_retry_non_retryable_errors() -> None:
    inner = ScriptedModel([AuthenticationFailed("bad key", model="m", status=401), "never"])
    with pytest.raises(AuthenticationFailed):
        await RetryingModel(inner, max_attempts=5).request(_request())
    assert len(inner.requests) == 1


async def test_does_not_retry_errors_that_are_not_model_errors() -> None:
    inner = ScriptedModel([ValueError("bug"), "never"])
    with pytest.raises(ValueError, match="bug"):
        await RetryingModel(inner).request(_request())
    assert len(inner.requests) == 1


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryingModel(ScriptedModel([]), max_attempts=0)
