"""The bare aiohttp path of `OpenAIModel` (non-streamed calls on an owned client under
asyncio) against the same emulator served on 127.0.0.1: it sends what the SDK sends, and
every answer, error and fault reads exactly as it does through the openai SDK."""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import httpx2
import openai
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from openai_emulator import Emulator, Reply, Seen, Step
from tiered import Agent
from tiered._errors import ModelError
from tiered._messages import ModelRequest, TextDelta, UserMessage
from tiered.models import OpenAIModel

pytestmark = pytest.mark.anyio

KEY = "sk-test-direct-0123456789"
HELLO = ModelRequest(
    messages=(UserMessage(content="Say hello."),),
    metadata={"agent": "greeter", "subtask_id": "t1"},
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def no_sdk_post(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any call through the SDK's `post` is recorded (a direct call makes none)."""
    calls: list[str] = []
    post = openai.AsyncOpenAI.post

    async def recorded(self: openai.AsyncOpenAI, path: str, **kwargs: Any) -> Any:
        calls.append(path)
        return await post(self, path, **kwargs)

    monkeypatch.setattr(openai.AsyncOpenAI, "post", recorded)
    return calls


@asynccontextmanager
async def direct(emulator: Emulator, **kwargs: Any) -> AsyncIterator[OpenAIModel]:
    """An owned `OpenAIModel` on the emulator served over real HTTP."""
    with emulator.serve() as url:
        model = OpenAIModel(kwargs.pop("name", "gpt-5.4-nano"), base_url=url, api_key=KEY, **kwargs)
        try:
            yield model
        finally:
            await model.aclose()
    assert not emulator.rejected, [e.message for e in emulator.rejected]


async def test_a_plain_call_skips_the_sdk_and_sends_what_it_sends(
    no_sdk_post: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_456")
    emulator = Emulator(script=[Reply(text="hello"), Reply(text="again")])
    async with direct(emulator) as model:
        first = await model.request(HELLO)
        second = await model.request(HELLO)
    assert (first.message.content, second.message.content) == ("hello", "again")
    assert first.usage.input_tokens > 0
    assert no_sdk_post == []
    headers = emulator.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("tiered/")
    assert headers["openai-organization"] == "org-123"
    assert headers["openai-project"] == "proj_456"
    assert (headers["x-tiered-agent"], headers["x-tiered-subtask"]) == ("greeter", "t1")


async def test_streamed_calls_and_httpx2_still_take_the_sdk(no_sdk_post: list[str]) -> None:
    emulator = Emulator(script=[Reply(text="plain"), Reply(text="streamed"), Reply(text="h")])
    deltas: list[str] = []

    def on_delta(delta: object) -> None:
        if isinstance(delta, TextDelta):
            deltas.append(delta.text)

    async with direct(emulator) as model:
        assert (await model.request(HELLO)).message.content == "plain"
        streamed = ModelRequest(messages=HELLO.messages, on_delta=on_delta)
        assert (await model.request(streamed)).message.content == "streamed"
    assert "".join(deltas) == "streamed"
    assert no_sdk_post == ["/chat/completions"]
    async with direct(Emulator(script=[Reply(text="h")]), transport="httpx2") as model:
        assert (await model.request(HELLO)).message.content == "h"
    assert no_sdk_post == ["/chat/completions"] * 2


def _error(status: int, body: object, headers: dict[str, str] | None = None) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.Response(
        status, content=content, headers={"content-type": "application/json", **(headers or {})}
    )


def _api_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


RATE = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "1.5s",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "1200",
    "x-ratelimit-reset-tokens": "6m0s",
}
FAULTS: dict[str, Step] = {
    "429 retry-after": _error(
        429, _api_error("Rate limit reached", "requests", None), {"retry-after": "7", **RATE}
    ),
    "429 retry-after-ms": _error(
        429, _api_error("Rate limit reached", "tokens", None), {"retry-after-ms": "1500"}
    ),
    "429 quota": _error(
        429,
        _api_error("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
    ),
    "401": _error(401, _api_error("Incorrect API key provided", "invalid_request_error", None)),
    "403": _error(403, _api_error("Project does not have access", "invalid_request_error", None)),
    "400 context": _error(
        400,
        _api_error(
            "This model's maximum context length is 400000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
    ),
    "400 llama.cpp context": _error(
        400, {"error": {"code": 400, "message": "too long", "type": "exceed_context_size_error"}}
    ),
    "400 other": _error(400, _api_error("Unknown parameter: 'x'", "invalid_request_error", None)),
    "404": _error(404, _api_error("The model does not exist", "invalid_request_error", None)),
    "408": _error(408, _api_error("Request timed out", "timeout", None)),
    "500": _error(500, _api_error("The server had an error", "server_error", None)),
    "502 html": httpx2.Response(502, content=b"<html>Bad gateway</html>"),
    "503 empty": httpx2.Response(503, content=b""),
    "422 list": _error(422, [{"loc": ["body"], "msg": "field required"}]),
    "200 not json": httpx2.Response(200, content=b"{not json", headers=RATE),
    "200 no choices": _error(200, {"id": "x", "object": "chat.completion", "choices": []}),
}


def _reading(exc: ModelError, base_url: str) -> dict[str, Any]:
    """Everything a caller (or RetryingModel) reads off an error, with the URL generalised."""
    return {
        "type": type(exc).__name__,
        "message": str(exc).replace(base_url, "<base>"),
        "status": exc.status,
        "retry_after": getattr(exc, "retry_after", None),
        "rate_limit": exc.rate_limit,
        "possibly_billed": exc.possibly_billed,
        "usage": exc.usage,
    }


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_every_error_reads_as_it_does_through_the_sdk(fault: str) -> None:
    step = FAULTS[fault]
    sdk_emulator = Emulator(script=[step])
    base = "http://127.0.0.1:1/v1"
    async with httpx2.AsyncClient(transport=sdk_emulator.transport()) as http:
        sdk_model = OpenAIModel("gpt-5.4-nano", base_url=base, api_key=KEY, http_client=http)
        with pytest.raises(ModelError) as through_sdk:
            await sdk_model.request(HELLO)
    async with direct(Emulator(script=[step])) as model:
        with pytest.raises(ModelError) as through_direct:
            await model.request(HELLO)
        direct_base = model.base_url
    assert _reading(through_direct.value, direct_base) == _reading(through_sdk.value, base)
    error = through_direct.value  # nothing chained to it can hold the request (or its key)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


async def test_the_key_never_reaches_an_error_even_when_echoed() -> None:
    def echo(seen: Seen) -> Step:
        token = seen.headers["authorization"]
        return _error(401, _api_error(f"Incorrect API key provided: {token}", "x", None))

    async with direct(Emulator(script=echo)) as model:
        with pytest.raises(ModelError) as info:
            await model.request(HELLO)
    assert "Incorrect API key provided: Bearer [redacted]" in str(info.value)
    assert KEY not in repr(vars(info.value)) + str(info.value)


async def test_the_proxy_from_the_environment_carries_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY is honoured (looked up once per client, not per request)."""
    lines: list[bytes] = []
    body = json.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-5.4-nano",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "via proxy"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()

    async def proxy(client: anyio.abc.SocketStream) -> None:
        async with client:
            buffered = BufferedByteReceiveStream(client)
            head = await buffered.receive_until(b"\r\n\r\n", 65_536)
            lines.append(head.split(b"\r\n")[0])
            sizes = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
            await buffered.receive_exactly(int(sizes[0].split(b":")[1]))
            await client.send(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                + b"content-length: %d\r\n\r\n" % len(body)
                + body
            )

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    model = OpenAIModel("gpt-5.4-nano", base_url="http://localhost:9/v1", api_key=KEY)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy)
        try:
            assert (await model.request(HELLO)).message.content == "via proxy"
        finally:
            await model.aclose()
            tg.cancel_scope.cancel()
    assert lines == [b"POST http://localhost:9/v1/chat/completions HTTP/1.1"]


async def test_aclose_closes_the_session_and_a_later_call_opens_another() -> None:
    emulator = Emulator(script=[Reply(text="one"), Reply(text="two")])
    async with direct(emulator) as model:
        await model.request(HELLO)
        session = model._direct
        await model.aclose()
        assert model._direct is None
        assert (await model.request(HELLO)).message.content == "two"
        assert model._direct is not None
        assert model._direct is not session


async def test_the_responses_api_goes_direct_too(no_sdk_post: list[str]) -> None:
    emulator = Emulator(script=[Reply(text="hello")])
    async with direct(emulator, api="responses") as model:
        response = await model.request(HELLO)
    assert response.message.content == "hello"
    assert no_sdk_post == []
    assert emulator.requests[0].api == "responses"


def test_a_model_used_by_two_event_loops_leaves_no_session_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each `run_sync` runs its own loop; the session of a finished loop is closed when
    that loop shuts down, though nobody called `aclose()`."""
    emulator = Emulator(script=[Reply(text="one"), Reply(text="two")])
    agent: Agent[str] = Agent(name="a")
    with emulator.serve() as url, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = OpenAIModel("gpt-5.4-nano", base_url=url, api_key=KEY)
        assert agent.run_sync("hi", model=model).output == "one"
        assert agent.run_sync("hi", model=model).output == "two"
        del model
        gc.collect()
    unclosed = [str(w.message) for w in caught if "nclosed" in str(w.message)]
    assert unclosed == []
    assert "Unclosed" not in caplog.text
