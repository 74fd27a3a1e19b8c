"""OpenAIModel on chat completions through the SDK's real HTTP stack, against the OpenAI
emulator (`tests/openai_emulator`) in-process: every request body is validated as the
API would, and scripted answers (`httpx2.Response`s) come back through the SDK."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import httpx2
import openai
import pytest
import structlog

from openai_emulator import Emulator, Reply, Step
from openai_fixtures import LOOKUP, REFUND_SCHEMA
from tiered._catalog import Catalog, ModelSpec, Tier
from tiered._errors import (
    AuthenticationFailed,
    BadModelResponse,
    ContextTooLong,
    ModelError,
    ModelTimeout,
    OutputTruncated,
    ProviderError,
    RateLimited,
    Refused,
    UnknownModel,
    UserError,
)
from tiered._messages import (
    AssistantMessage,
    ModelRequest,
    OutputSchema,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models import OpenAIModel, RetryingModel, allow_remote_requests
from tiered.models._guard import remote_requests_allowed
from tiered.models._transport import is_loopback

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def _remote_requests_forbidden() -> Iterator[None]:
    """Forbid remote requests for one test, then restore whatever was set before."""
    before = remote_requests_allowed()
    allow_remote_requests(False)
    yield
    allow_remote_requests(before)


# --- a fake chat completions server -----------------------------------------------------


def completion(
    message: dict[str, Any],
    *,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    model: str = "gpt-5.4-nano-2026-03-17",
) -> dict[str, Any]:
    """A chat completion body as OpenAI sends it."""
    return {
        "id": "chatcmpl-CZ1x9",
        "object": "chat.completion",
        "created": 1_774_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 200,
            "completion_tokens": 30,
            "total_tokens": 230,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }


def error_body(message: str, *, type: str, code: str | None, param: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type, "param": param, "code": code}}
    ).encode()


def ok(body: dict[str, Any]) -> httpx2.Response:
    return httpx2.Response(200, json=body, headers={"x-request-id": "req_123"})


class Server(Emulator):
    """The emulator answering with a fixed list of steps, in order."""

    def __init__(self, *steps: Step) -> None:
        super().__init__(script=list(steps))


@asynccontextmanager
async def serve(server: Server, **kwargs: Any) -> AsyncIterator[OpenAIModel]:
    """An OpenAIModel (chat completions) whose HTTP client talks to `server`; closed
    afterwards, and no request may have been one the real API rejects."""
    kwargs.setdefault("api_key", "sk-test-key")
    kwargs.setdefault("api", "chat")
    async with httpx2.AsyncClient(transport=server.transport()) as http:
        yield OpenAIModel(kwargs.pop("name", "gpt-5.4-nano"), http_client=http, **kwargs)
    assert not server.rejected, [e.message for e in server.rejected]


HELLO = ModelRequest(messages=(UserMessage(content="Say hello."),))


# --- request mapping --------------------------------------------------------------------


async def test_request_body_maps_every_option() -> None:
    server = Server(ok(completion({"content": "{}"})))
    request = ModelRequest(
        messages=(
            SystemMessage(content="Draft refunds."),
            UserMessage(content="Refund order A1."),
            AssistantMessage(
                tool_calls=(ToolCall(id="call_1", name="lookup_order", arguments='{"order_id":'),)
            ),
            ToolResultMessage(tool_call_id="call_1", name="lookup_order", content="bad JSON"),
            AssistantMessage(content="Checking.", tool_calls=()),
        ),
        tools=(LOOKUP,),
        tool_choice="required",
        parallel_tool_calls=False,
        output_schema=OutputSchema(name="Refund", schema=REFUND_SCHEMA),
        reasoning_effort="low",
        max_output_tokens=512,
        metadata={"agent": "refunds"},
    )
    async with serve(server, name="qwen3:8b", tier=Tier.NANO) as model:
        await model.request(request)

    [sent] = server.requests
    assert sent.url == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert server.bodies[0] == {
        "model": "qwen3:8b",
        "messages": [
            {"role": "system", "content": "Draft refunds."},
            {"role": "user", "content": "Refund order A1."},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id":'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "bad JSON"},
            {"role": "assistant", "content": "Checking."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Look an order up by its id.",
                    "parameters": LOOKUP.parameters,
                    "strict": True,
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Refund", "schema": REFUND_SCHEMA, "strict": True},
        },
        "reasoning_effort": "low",
        "max_completion_tokens": 512,
    }


async def test_gpt_5_4_on_chat_never_sends_tools_with_reasoning_effort() -> None:
    """OpenAI rejects the pair on chat completions; the model drops the effort and says so."""
    server = Server(ok(completion({"content": "hi"})))
    request = ModelRequest(messages=HELLO.messages, tools=(LOOKUP,), reasoning_effort="high")
    with structlog.testing.capture_logs() as events:
        async with serve(server) as model:
            await model.request(request)
    assert "reasoning_effort" not in server.bodies[0]
    assert server.bodies[0]["tools"][0]["function"]["name"] == "lookup_order"
    [warning] = [e for e in events if e["event"] == "openai.reasoning_effort_dropped"]
    assert warning["log_level"] == "warning"
    assert 'api="responses"' in warning["reason"]


async def test_gpt_5_4_on_chat_keeps_reasoning_effort_without_tools() -> None:
    server = Server(ok(completion({"content": "hi"})))
    async with serve(server) as model:
        await model.request(ModelRequest(messages=HELLO.messages, reasoning_effort="high"))
    assert server.bodies[0]["reasoning_effort"] == "high"


@pytest.mark.parametrize(("effort", "sent"), [(None, True), ("none", True), ("low", False)])
async def test_temperature_only_without_reasoning(
    effort: Literal["none", "low"] | None, sent: bool
) -> None:
    """Reasoning models take sampling parameters only with effort "none" (GPT-5 guide)."""
    server = Server(ok(completion({"content": "hi"})))
    request = ModelRequest(messages=HELLO.messages, reasoning_effort=effort, temperature=0.2)
    async with serve(server) as model:
        await model.request(request)
    assert ("temperature" in server.bodies[0]) is sent


async def test_unset_options_are_left_out() -> None:
    server = Server(ok(completion({"content": "hi"})))
    async with serve(server) as model:
        await model.request(HELLO)
    assert server.bodies[0] == {
        "model": "gpt-5.4-nano",
        "messages": [{"role": "user", "content": "Say hello."}],
    }


async def test_tool_choice_by_name_forces_that_function() -> None:
    server = Server(ok(completion({"content": "hi"})))
    tool = ToolDefinition(
        name="search",
        description="Search.",
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
    )
    async with serve(server) as model:
        await model.request(
            ModelRequest(messages=HELLO.messages, tools=(tool,), tool_choice="search")
        )
    body = server.bodies[0]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert body["parallel_tool_calls"] is True


# --- response mapping -------------------------------------------------------------------


async def test_plain_text_answer() -> None:
    server = Server(ok(completion({"content": "Hello!"})))
    async with serve(server) as model:
        response = await model.request(HELLO)
    assert response.message == AssistantMessage(content="Hello!")
    assert response.model_name == "gpt-5.4-nano-2026-03-17"
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=200, output_tokens=30, requests=1)


async def test_malformed_tool_arguments_pass_through_raw() -> None:
    raw = '{"order_id": "A1", '
    server = Server(
        ok(
            completion(
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_Xy1",
                            "type": "function",
                            "function": {"name": "lookup_order", "arguments": raw},
                        }
                    ],
                },
                finish_reason="tool_calls",
            )
        )
    )
    async with serve(server) as model:
        response = await model.request(HELLO)
    assert response.message == AssistantMessage(
        tool_calls=(ToolCall(id="call_Xy1", name="lookup_order", arguments=raw),)
    )
    assert response.finish_reason == "tool_calls"


async def test_cached_and_reasoning_tokens_map_into_usage() -> None:
    usage = {
        "prompt_tokens": 2_048,
        "completion_tokens": 700,
        "total_tokens": 2_748,
        "prompt_tokens_details": {"cached_tokens": 1_920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 512,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    server = Server(ok(completion({"content": "done"}, usage=usage)))
    async with serve(server) as model:
        response = await model.request(HELLO)
    assert response.usage == Usage(
        input_tokens=2_048,
        cached_input_tokens=1_920,
        output_tokens=700,
        reasoning_tokens=512,
        requests=1,
    )


async def test_usage_without_details_or_model_falls_back() -> None:
    """A bare server (llama.cpp, Ollama) may leave out the details and even the model."""
    body = completion({"content": "ok"}, usage={"prompt_tokens": 12, "completion_tokens": 3})
    del body["model"]
    server = Server(ok(body))
    async with serve(server) as model:
        response = await model.request(HELLO)
    assert response.usage == Usage(input_tokens=12, output_tokens=3, requests=1)
    assert response.model_name == "gpt-5.4-nano"


async def test_refusal_raises_refused() -> None:
    text = "I'm sorry, I can't help with that."
    server = Server(ok(completion({"content": None, "refusal": text})))
    async with serve(server) as model:
        with pytest.raises(Refused) as info:
            await model.request(HELLO)
    assert info.value.refusal == text
    assert not info.value.retryable


async def test_finish_reason_length_is_output_truncated_never_output() -> None:
    """Truncated text (llama.cpp's server does this too) is not a valid answer."""
    usage = {"prompt_tokens": 10, "completion_tokens": 64}
    server = Server(
        ok(completion({"content": "The refund is 34"}, finish_reason="length", usage=usage))
    )
    async with serve(server) as model:
        with pytest.raises(OutputTruncated) as info:
            await model.request(ModelRequest(messages=HELLO.messages, max_output_tokens=64))
    assert info.value.partial == "The refund is 34"
    assert info.value.max_output_tokens == 64
    assert info.value.usage == Usage(input_tokens=10, output_tokens=64, requests=1)
    assert not info.value.retryable


async def test_finish_reason_content_filter_is_refused() -> None:
    server = Server(ok(completion({"content": "partial"}, finish_reason="content_filter")))
    async with serve(server) as model:
        with pytest.raises(Refused, match="content filter"):
            await model.request(HELLO)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(ok({**completion({"content": "x"}), "choices": []}), id="no-choices"),
        pytest.param(httpx2.Response(200, text="<html>proxy</html>"), id="not-json"),
        pytest.param(ok({**completion({"content": "x"}), "choices": [{}]}), id="no-message"),
    ],
)
async def test_unreadable_answer_is_bad_model_response(response: httpx2.Response) -> None:
    async with serve(Server(response)) as model:
        with pytest.raises(BadModelResponse):
            await model.request(HELLO)


# --- errors -----------------------------------------------------------------------------


def rate_limited(headers: dict[str, str]) -> httpx2.Response:
    body = error_body(
        "Rate limit reached for gpt-5.4-nano on tokens per min (TPM): Limit 200000, Used "
        "199500, Requested 800. Please try again in 90ms.",
        type="tokens",
        code="rate_limit_exceeded",
    )
    return httpx2.Response(429, content=body, headers=headers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "90", "retry-after": "1"}, 0.09),
        ({}, None),
    ],
)
async def test_429_is_rate_limited_with_retry_after(
    headers: dict[str, str], expected: float | None
) -> None:
    async with serve(Server(rate_limited(headers))) as model:
        with pytest.raises(RateLimited) as info:
            await model.request(HELLO)
    assert info.value.retry_after == expected
    assert info.value.retryable
    assert info.value.status == 429
    # the SDK's exception (its request carries the key) is not chained
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


async def test_retry_after_as_http_date() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    async with serve(Server(rate_limited({"Retry-After": when}))) as model:
        with pytest.raises(RateLimited) as info:
            await model.request(HELLO)
    assert info.value.retry_after is not None
    assert 25 < info.value.retry_after <= 30


async def test_insufficient_quota_is_not_retryable() -> None:
    body = error_body(
        "You exceeded your current quota, please check your plan and billing details.",
        type="insufficient_quota",
        code="insufficient_quota",
    )
    async with serve(Server(httpx2.Response(429, content=body))) as model:
        with pytest.raises(ModelError) as info:
            await model.request(HELLO)
    assert not isinstance(info.value, RateLimited)
    assert not info.value.retryable
    assert "billing" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            error_body(
                "This model's maximum context length is 400000 tokens. However, your messages "
                "resulted in 412345 tokens. Please reduce the length of the messages.",
                type="invalid_request_error",
                code="context_length_exceeded",
                param="messages",
            ),
            id="openai",
        ),
        pytest.param(
            error_body(
                "This model's maximum context length is 32768 tokens. However, you requested "
                "40000 tokens (39000 in the messages, 1000 in the completion).",
                type="BadRequestError",
                code=None,
            ),
            id="vllm",
        ),
    ],
)
async def test_context_too_long(body: bytes) -> None:
    async with serve(Server(httpx2.Response(400, content=body))) as model:
        with pytest.raises(ContextTooLong) as info:
            await model.request(HELLO)
    assert info.value.status == 400
    assert "maximum context length" in str(info.value)
    assert not info.value.retryable


async def test_other_bad_request_carries_provider_message() -> None:
    body = error_body(
        "Invalid schema for response_format 'Refund': 'additionalProperties' is required.",
        type="invalid_request_error",
        code="invalid_json_schema",
        param="response_format",
    )
    async with serve(Server(httpx2.Response(400, content=body))) as model:
        with pytest.raises(ModelError) as info:
            await model.request(HELLO)
    assert type(info.value) is ModelError
    assert info.value.status == 400
    assert "'additionalProperties' is required" in str(info.value)
    assert not info.value.retryable


@pytest.mark.parametrize("status", [401, 403])
async def test_bad_credentials_are_authentication_failed(status: int) -> None:
    body = error_body(
        "Incorrect API key provided: sk-test-****-key.",
        type="invalid_request_error",
        code="invalid_api_key",
    )
    async with serve(Server(httpx2.Response(status, content=body))) as model:
        with pytest.raises(AuthenticationFailed) as info:
            await model.request(HELLO)
    assert info.value.status == status
    assert "OPENAI_API_KEY" in str(info.value)
    assert "api_key=" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_is_provider_error(status: int) -> None:
    body = error_body("The server had an error.", type="server_error", code=None)
    async with serve(Server(httpx2.Response(status, content=body))) as model:
        with pytest.raises(ProviderError) as info:
            await model.request(HELLO)
    assert info.value.status == status
    assert info.value.retryable


async def test_timeout_is_model_timeout() -> None:
    async with serve(Server(httpx2.ReadTimeout("timed out"))) as model:
        with pytest.raises(ModelTimeout) as info:
            await model.request(HELLO)
    assert info.value.retryable
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert info.value.possibly_billed  # a read timeout: the request was sent


async def test_connection_failure_is_provider_error() -> None:
    async with serve(Server(httpx2.ConnectError("connection refused"))) as model:
        with pytest.raises(ProviderError) as info:
            await model.request(HELLO)
    assert info.value.retryable
    assert "base_url" in str(info.value)


async def test_retrying_model_retries_a_429_then_succeeds() -> None:
    server = Server(
        rate_limited({"retry-after-ms": "1"}),
        ok(completion({"content": "second time lucky"})),
    )
    async with serve(server) as model:
        retrying = RetryingModel(model, max_attempts=3, base_delay=0.001)
        response = await retrying.request(HELLO)
    assert response.message.content == "second time lucky"
    assert len(server.requests) == 2


# --- secrets, guard, construction --------------------------------------------------------

SECRET = "sk-test-SECRET123"


async def test_api_key_never_appears_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="openai")
    caplog.set_level(logging.DEBUG, logger="httpx2")
    caplog.set_level(logging.DEBUG, logger="tiered")
    server = Server(
        rate_limited({"retry-after-ms": "1"}),
        httpx2.Response(
            401,
            content=error_body(
                f"Incorrect API key provided: {SECRET}.",
                type="invalid_request_error",
                code="invalid_api_key",
            ),
        ),
        ok(completion({"content": "hi"})),
    )
    with structlog.testing.capture_logs() as events:
        async with serve(server, api_key=SECRET) as model:
            retrying = RetryingModel(model, max_attempts=2, base_delay=0.001)
            with pytest.raises(AuthenticationFailed) as info:
                await retrying.request(HELLO)
            assert SECRET not in str(info.value)
            await retrying.request(HELLO)
            assert SECRET not in repr(model)
            assert SECRET not in repr(vars(model))

    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert caplog.records, "expected the SDK's debug records to be captured"
    assert events, "expected the retry event to be captured"
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)
        assert SECRET not in repr(record.__dict__)
    for event in events:
        assert SECRET not in repr(event)


@pytest.mark.usefixtures("_remote_requests_forbidden")
async def test_guard_blocks_remote_requests() -> None:
    model = OpenAIModel("gpt-5.4-nano", api_key="sk-test-key")
    with pytest.raises(UserError, match="remote model requests are disabled"):
        await model.request(HELLO)
    await model.aclose()


@pytest.mark.usefixtures("_remote_requests_forbidden")
async def test_guard_lets_a_mock_transport_through() -> None:
    async with serve(Server(ok(completion({"content": "hi"})))) as model:
        response = await model.request(HELLO)
    assert response.message.content == "hi"


@pytest.mark.usefixtures("_remote_requests_forbidden")
async def test_guard_lets_loopback_servers_through() -> None:
    """A loopback base_url passes the guard: the request reaches the (closed) port."""
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with OpenAIModel(
            "qwen2.5-coder", tier=Tier.NANO, base_url=f"http://127.0.0.1:{port}/v1"
        ) as model:
            # httpx2 reports a refused connection as such; the SDK's aiohttp transport
            # reports it as a connect timeout. Both are transient, retryable failures.
            with pytest.raises((ProviderError, ModelTimeout)) as info:
                await model.request(HELLO)
            assert info.value.retryable


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8000/v1", True),
        ("http://127.0.0.1:11434/v1", True),
        ("http://127.8.9.10/v1", True),
        ("http://[::1]:8080/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://10.0.0.5:8000/v1", False),
        ("http://localhost.example.com/v1", False),
    ],
)
def test_loopback_hosts(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_spec_comes_from_the_catalog() -> None:
    model = OpenAIModel("gpt-5.4-mini", api_key="sk-test-key")
    assert model.spec.tier is Tier.MINI
    assert model.spec.context_window == 400_000


def test_unknown_model_with_a_tier_is_self_hosted_with_no_price_known() -> None:
    model = OpenAIModel("qwen2.5-coder:7b", tier=Tier.NANO, base_url="http://gpu-box:8000/v1")
    assert model.spec.tier is Tier.NANO
    assert not model.spec.priced  # unknown, never reported as $0
    assert model.spec.cost(Usage(input_tokens=1_000, output_tokens=500)) == Decimal(0)


def test_unknown_model_without_a_tier_is_refused() -> None:
    with pytest.raises(UnknownModel):
        OpenAIModel("mystery-model")


def test_explicit_spec_and_catalog() -> None:
    spec = ModelSpec(
        name="llama-3-8b", tier=Tier.MINI, context_window=8_192, max_output_tokens=2_048
    )
    assert OpenAIModel("llama-3-8b", spec=spec).spec is spec
    catalog = Catalog()
    catalog.register(spec)
    assert OpenAIModel("llama-3-8b", catalog=catalog).spec is spec


async def test_client_and_connection_options_are_exclusive() -> None:
    async with openai.AsyncOpenAI(api_key="sk-test-key") as client:
        with pytest.raises(UserError, match="either `client=`"):
            OpenAIModel("gpt-5.4-nano", client=client, base_url="http://localhost:1/v1")


async def test_an_explicit_client_is_used_and_left_open() -> None:
    server = Server(Reply(text="hi"))
    async with httpx2.AsyncClient(transport=server.transport()) as http:
        client = openai.AsyncOpenAI(api_key="sk-test-key", http_client=http, max_retries=0)
        async with OpenAIModel("gpt-5.4-nano", client=client) as model:
            assert (await model.request(HELLO)).message.content == "hi"
        assert not client.is_closed()


async def test_missing_key_for_openai_is_authentication_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = Server()
    async with serve(server, api_key=None) as model:
        with pytest.raises(AuthenticationFailed, match="OPENAI_API_KEY"):
            await model.request(HELLO)
    assert not server.requests


async def test_self_hosted_server_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = Server(ok(completion({"content": "hi"}, model="qwen2.5-coder:7b")))
    async with serve(
        server, name="qwen2.5-coder:7b", tier=Tier.NANO, api_key=None, base_url="http://gpu:8000/v1"
    ) as model:
        response = await model.request(HELLO)
    assert server.requests[0].url == "http://gpu:8000/v1/chat/completions"
    assert server.requests[0].headers["authorization"].startswith("Bearer ")
    assert response.model_name == "qwen2.5-coder:7b"


@pytest.mark.parametrize(("transport", "aiohttp_expected"), [("auto", True), ("httpx2", False)])
async def test_default_transport_is_aiohttp_on_asyncio(
    transport: Literal["auto", "httpx2"], aiohttp_expected: bool
) -> None:
    """aiohttp under asyncio (measured faster in BENCHMARKS.md); httpx2 when asked."""
    async with OpenAIModel(
        "m", tier=Tier.NANO, base_url="http://127.0.0.1:9/v1", transport=transport
    ) as model:
        client = model._connect()
        assert ("aiohttp" in type(client._client).__name__.lower()) is aiohttp_expected
