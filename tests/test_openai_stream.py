"""Streaming on both APIs against the OpenAI emulator, in-process and over real loopback
HTTP; and one `Agent` running unchanged on either API, streamed or not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx2
import pytest
from pydantic import BaseModel

from openai_emulator import Call, Emulator, Reply, Step, StreamFault, Tokens
from openai_fixtures import LOOKUP
from tiered import Agent, AgentResult, OutputTruncated, Tier, tool
from tiered._errors import BadModelResponse, ProviderError
from tiered._messages import (
    ModelDelta,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models import OpenAIModel, RetryingModel

pytestmark = pytest.mark.anyio

Api = Literal["chat", "responses"]
APIS: tuple[Api, ...] = ("chat", "responses")


@asynccontextmanager
async def serve(emulator: Emulator, api: Api, **kwargs: Any) -> AsyncIterator[OpenAIModel]:
    async with httpx2.AsyncClient(transport=emulator.transport()) as http:
        yield OpenAIModel("gpt-5.4-mini", api=api, api_key="sk-test", http_client=http, **kwargs)
    assert not emulator.rejected, [e.message for e in emulator.rejected]


def streamed(
    messages: tuple[UserMessage, ...] = (UserMessage(content="Say hello."),), **kwargs: Any
) -> tuple[ModelRequest, list[ModelDelta]]:
    """A request asking for streaming, and the list its deltas land in."""
    deltas: list[ModelDelta] = []
    return ModelRequest(messages=messages, on_delta=deltas.append, **kwargs), deltas


def script(*steps: Step) -> Emulator:
    return Emulator(script=list(steps))


@pytest.mark.parametrize("api", APIS)
async def test_text_streams_as_deltas_with_usage_at_the_end(api: Api) -> None:
    usage = Tokens(input=300, cached=256, output=12, reasoning=4)
    emulator = script(Reply(text="Hello there, friend!", usage=usage))
    request, deltas = streamed()
    async with serve(emulator, api) as model:
        response = await model.request(request)
    assert len(deltas) > 1
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "Hello there, friend!"
    assert response.message.content == "Hello there, friend!"
    assert response.usage == Usage(
        input_tokens=300, cached_input_tokens=256, output_tokens=12, reasoning_tokens=4, requests=1
    )
    assert response.finish_reason == "stop"
    body = emulator.bodies[0]
    assert body["stream"] is True
    if api == "chat":  # usage comes only in the final chunk, and only when asked for
        assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("api", APIS)
async def test_tool_calls_stream_as_deltas(api: Api) -> None:
    calls = [Call("lookup_order", {"order_id": "A1"}, id="call_a"), Call("lookup_order", "{}")]
    emulator = script(Reply(calls=calls))
    request, deltas = streamed(tools=(LOOKUP,))
    async with serve(emulator, api) as model:
        response = await model.request(request)
    heads = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [(d.index, d.name) for d in heads] == [(0, "lookup_order"), (1, "lookup_order")]
    assert heads[0].id == "call_a"
    joined = {
        i: "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta) and d.index == i)
        for i in (0, 1)
    }
    assert joined == {0: '{"order_id": "A1"}', 1: "{}"}
    second_id = response.message.tool_calls[1].id
    assert response.message.tool_calls == (
        ToolCall(id="call_a", name="lookup_order", arguments='{"order_id": "A1"}'),
        ToolCall(id=second_id, name="lookup_order", arguments="{}"),
    )
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("api", APIS)
async def test_a_truncated_stream_is_output_truncated(api: Api) -> None:
    emulator = script(
        Reply(text="The answer is", finish="length", usage=Tokens(input=9, output=16))
    )
    request, deltas = streamed(max_output_tokens=16)
    async with serve(emulator, api) as model:
        with pytest.raises(OutputTruncated) as info:
            await model.request(request)
    assert deltas  # the text did stream; it is just never returned as a result
    assert info.value.partial == "The answer is"
    assert info.value.usage == Usage(input_tokens=9, output_tokens=16, requests=1)


def sse(*events: object, done: bool = True) -> httpx2.Response:
    frames = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    body = "".join(frames) + ("data: [DONE]\n\n" if done else "")
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)


USAGE_CHUNK = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}


@pytest.mark.parametrize(
    ("api", "answer", "usage"),
    [
        pytest.param(
            "chat", sse({"choices": [{"index": 0, "delta": {"content": [None]}}]}), None, id="null"
        ),
        pytest.param("chat", sse(USAGE_CHUNK, "{not json"), 5, id="not-json"),
        pytest.param(
            "chat",
            sse({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]}, USAGE_CHUNK),
            5,
            id="call-without-name",
        ),
        pytest.param("responses", sse({"type": "response.created"}, done=False), None, id="cut"),
        pytest.param(
            "responses", sse({"type": "response.output_text.delta", "delta": 7}), None, id="delta"
        ),
    ],
)
async def test_malformed_streams_are_bad_model_response(
    api: Api, answer: httpx2.Response, usage: int | None
) -> None:
    request, _ = streamed()
    async with serve(script(answer), api) as model:
        with pytest.raises(BadModelResponse) as info:
            await model.request(request)
    got = info.value.usage
    assert (got.input_tokens if got is not None else None) == usage


# --- servers that stream badly ----------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("over", ["in-process", "loopback"])
async def test_a_server_that_ignores_stream_true_is_read_whole(api: Api, over: str) -> None:
    """Some OpenAI-compatible servers answer `stream: true` with the plain JSON body: that
    is the whole answer, so it is parsed as one and handed on as deltas."""
    emulator = Emulator(
        script=[Reply(text="whole at once", calls=[Call("lookup_order", {"order_id": "A1"})])],
        stream_fault="ignored",
    )
    request, deltas = streamed(tools=(LOOKUP,))
    if over == "loopback":
        with emulator.serve() as base_url:
            async with OpenAIModel("gpt-5.4-mini", base_url=base_url, api=api) as model:
                response = await model.request(request)
    else:
        async with serve(emulator, api) as model:
            response = await model.request(request)
    assert emulator.bodies[0]["stream"] is True
    assert response.message.content == "whole at once"
    assert [(c.name, json.loads(c.arguments)) for c in response.message.tool_calls] == [
        ("lookup_order", {"order_id": "A1"})
    ]
    assert response.usage.requests == 1
    assert response.usage.output_tokens > 0
    assert deltas == [
        TextDelta(text="whole at once"),
        ToolCallDelta(
            index=0,
            id=response.message.tool_calls[0].id,
            name="lookup_order",
            arguments=response.message.tool_calls[0].arguments,
        ),
    ]


class _DroppedBody(httpx2.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"id": "chatcmpl-'
        raise httpx2.ReadError("connection reset by peer")


async def test_a_whole_body_dropped_mid_read_is_a_typed_transport_failure() -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "application/json"}
        return httpx2.Response(200, headers=headers, stream=_DroppedBody())

    request, deltas = streamed()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        model = OpenAIModel("gpt-5.4-mini", api="chat", api_key="sk-test", http_client=http)
        with pytest.raises(ProviderError, match="failed mid-request") as info:
            await model.request(request)
    assert info.value.possibly_billed  # the request was sent: it may have been billed
    assert deltas == []


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("fault", "says"),
    [("empty", "without a single event"), ("cut", "before")],
)
async def test_a_stream_without_its_end_is_bad_model_response(
    api: Api, fault: StreamFault, says: str
) -> None:
    """No events, or events that stop before the finish (chat: no `finish_reason`;
    Responses: no `response.completed`): never an empty or partial success."""
    emulator = Emulator(script=[Reply(text="half an ans")], stream_fault=fault)
    request, _ = streamed()
    async with serve(emulator, api) as model:
        with pytest.raises(BadModelResponse, match=says) as info:
            await model.request(request)
    assert info.value.model == "gpt-5.4-mini"


async def test_an_agent_on_an_empty_stream_fails_typed_not_with_repairs() -> None:
    emulator = Emulator(script=[Reply(text="never seen")], stream_fault="empty")
    deltas: list[ModelDelta] = []
    async with serve(emulator, "chat") as model:
        with pytest.raises(BadModelResponse, match="without a single event"):
            await Agent(instructions="x").run("hi", model=model, on_delta=deltas.append)
    assert deltas == []
    assert len(emulator.requests) == 1  # no repair turn asked for a reply that never came


async def test_a_responses_error_event_is_provider_error() -> None:
    request, _ = streamed()
    answer = sse({"type": "error", "code": "server_error", "message": "overloaded"}, done=False)
    async with serve(script(answer), "responses") as model:
        with pytest.raises(ProviderError, match="overloaded"):
            await model.request(request)


@pytest.mark.parametrize("api", APIS)
async def test_streaming_over_real_loopback_http(api: Api) -> None:
    """The SDK's default transport (aiohttp on asyncio) reading SSE from a socket."""
    emulator = script(Reply(text="streamed over a socket"), Reply(text="and whole"))
    request, deltas = streamed()
    with emulator.serve() as base_url:
        async with OpenAIModel("gpt-5.4-nano", base_url=base_url, api=api) as model:
            first = await model.request(request)
            second = await model.request(ModelRequest(messages=request.messages))
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "streamed over a socket"
    assert first.message.content == "streamed over a socket"
    assert second.message.content == "and whole"
    assert first.usage.requests == 1
    assert not emulator.rejected


# --- one agent, either API --------------------------------------------------------------


class Refund(BaseModel):
    order_id: str
    amount_cents: int


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Look an order up by its id."""
    return {"order_id": order_id, "price_cents": 3499}


class Refunds(Agent[Refund]):
    """Works out a refund."""

    instructions = "Use lookup_order, then answer with the refund."
    tier = Tier.MINI
    tools = (lookup_order,)
    output_type = Refund
    tool_choice = "required"
    reasoning_effort = "low"


def refund_script() -> Emulator:
    return script(
        Reply(calls=[Call("lookup_order", {"order_id": "A1"})]),
        Reply(text='{"order_id": "A1", "amount_cents": 3499}'),
    )


@pytest.mark.parametrize("api", APIS)
async def test_the_same_agent_runs_on_either_api(api: Api) -> None:
    emulator = refund_script()
    async with serve(emulator, api) as model:
        result = await Refunds().run("Refund A1.", model=model)
    assert result.output == Refund(order_id="A1", amount_cents=3499)
    assert result.turns == 2
    assert result.usage.requests == 2
    assert {s.api for s in emulator.requests} == {api}


@pytest.mark.parametrize("api", APIS)
async def test_the_same_agent_streams_on_either_api(api: Api) -> None:
    emulator = refund_script()
    items: list[object] = []
    async with serve(emulator, api) as model, Refunds().run_stream("Refund A1.", model=model) as s:
        async for item in s:
            items.append(item)
    *deltas, last = items
    assert isinstance(last, AgentResult)
    assert last.output == Refund(order_id="A1", amount_cents=3499)
    assert s.result is last
    assert any(isinstance(d, ToolCallDelta) and d.name == "lookup_order" for d in deltas)
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert json.loads(text) == {"order_id": "A1", "amount_cents": 3499}
    assert all(b["stream"] is True for b in emulator.bodies)


async def test_streaming_survives_retrying_model() -> None:
    """The callback rides on the request, so a wrapper passes it on unchanged."""
    busy = httpx2.Response(503, json={"error": {"message": "busy", "type": "server_error",
                                                "param": None, "code": None}})  # fmt: skip
    emulator = script(busy, Reply(text="second time"))
    request, deltas = streamed()
    async with serve(emulator, "responses") as model:
        retrying = RetryingModel(model, max_attempts=2, base_delay=0.001)
        response = await retrying.request(request)
    assert response.message.content == "second time"
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "second time"
    assert len(emulator.requests) == 2
