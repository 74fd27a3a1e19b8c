"""Property tests: whatever body or stream a server sends, `OpenAIModel` either returns a
well-typed `ModelResponse` or raises an error of the `TieredError` family, never a
`KeyError`, `TypeError` or `AttributeError` from inside the parser."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import AsyncIterator
from typing import Any, Literal, cast

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiered._errors import BadModelResponse, TieredError
from tiered._messages import ModelDelta, ModelRequest, ModelResponse, UserMessage
from tiered.models import OpenAIModel

Api = Literal["chat", "responses"]
REQUEST = ModelRequest(messages=(UserMessage(content="hi"),), max_output_tokens=64)

WORDS = [
    "choices", "message", "content", "tool_calls", "function", "name", "arguments", "id",
    "call_id", "usage", "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens",
    "prompt_tokens_details", "completion_tokens_details", "input_tokens_details",
    "output_tokens_details", "cached_tokens", "reasoning_tokens", "finish_reason", "refusal",
    "model", "output", "type", "text", "summary", "encrypted_content", "status",
    "incomplete_details", "reason", "error", "delta", "index", "item", "output_index",
    "response", "message", "length", "content_filter", "stop", "function_call", "reasoning",
    "output_text", "completed", "incomplete", "failed", "response.completed",
    "response.incomplete", "response.output_text.delta", "response.output_item.added",
    "response.function_call_arguments.delta", "max_output_tokens",
]  # fmt: skip
LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS)
    | st.text(max_size=8)
)
JSONISH = st.recursive(
    LEAF,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=25,
)

CHAT: dict[str, Any] = {
    "id": "c",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "hi",
                "refusal": None,
                "tool_calls": [
                    {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 1},
    },
}
RESPONSE: dict[str, Any] = {
    "id": "r",
    "model": "m",
    "status": "completed",
    "incomplete_details": None,
    "error": None,
    "output": [
        {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "s"}],
         "encrypted_content": "e"},
        {"type": "message", "content": [{"type": "output_text", "text": "hi"},
                                        {"type": "refusal", "refusal": "no"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    ],
    "usage": {"input_tokens": 3, "output_tokens": 2, "input_tokens_details": {"cached_tokens": 1},
              "output_tokens_details": {"reasoning_tokens": 1}},
}  # fmt: skip
CHUNKS = [
    {"model": "m", "choices": [{"index": 0, "delta": {"content": "h"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "t", "function": {"name": "f", "arguments": "{"}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
        "arguments": "}"}}]}, "finish_reason": "tool_calls"}]},
    {"choices": [], "usage": CHAT["usage"]},
]  # fmt: skip
EVENTS = [
    {"type": "response.output_item.added", "output_index": 2,
     "item": {"type": "function_call", "call_id": "c", "name": "f", "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": "{}"},
    {"type": "response.output_text.delta", "delta": "hi"},
    {"type": "response.completed", "response": RESPONSE},
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """`template` with a few subtrees replaced, removed or retyped: near-valid bodies reach
    the deep paths of a parser that random JSON would not."""
    value = copy.deepcopy(template)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        value = _mutate(draw, value)
    return value


def _mutate(draw: st.DrawFn, node: Any) -> Any:
    if isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)))
        action = draw(st.sampled_from(["recurse", "recurse", "drop", "replace"]))
        if action == "drop":
            del node[key]
        elif action == "replace":
            node[key] = draw(JSONISH)
        else:
            node[key] = _mutate(draw, node[key])
        return node
    if isinstance(node, list) and node and draw(st.booleans()):
        i = draw(st.integers(min_value=0, max_value=len(node) - 1))
        node[i] = _mutate(draw, node[i])
        return node
    return draw(JSONISH)


def body_for(api: Api) -> st.SearchStrategy[Any]:
    return JSONISH | mutated(CHAT if api == "chat" else RESPONSE)


def events_for(api: Api) -> st.SearchStrategy[list[Any]]:
    template = CHUNKS if api == "chat" else EVENTS
    near = mutated(template).map(lambda v: v if isinstance(v, list) else [v])
    return st.lists(JSONISH, max_size=4) | near


def check(response: ModelResponse) -> None:
    """A returned response is well typed all the way down."""
    message = response.message
    assert message.content is None or isinstance(message.content, str)
    for tc in message.tool_calls:
        assert isinstance(tc.id, str)
        assert isinstance(tc.name, str)
        assert isinstance(tc.arguments, str)
    for value in (response.usage.input_tokens, response.usage.output_tokens):
        assert isinstance(value, int)
        assert 0 <= value < 10**12
    assert isinstance(response.model_name, str)


MODELS = {
    api: OpenAIModel("gpt-5.4-mini", api=api, api_key="sk-test") for api in ("chat", "responses")
}


def model(api: Api) -> OpenAIModel:
    return MODELS[api]


@pytest.mark.parametrize("api", ["chat", "responses"])
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_body_parses_or_raises_a_typed_error(api: Api, data: st.DataObject) -> None:
    value = data.draw(body_for(api))
    raw = data.draw(st.just(json.dumps(value).encode()) | st.binary(max_size=40))
    with contextlib.suppress(TieredError):
        check(model(api)._read(raw, 200, REQUEST))


class _Events:
    """Stands in for the SDK's `AsyncStream`: the decoded events, in order."""

    def __init__(self, events: list[Any]) -> None:
        self._events = events
        self.response = httpx2.Response(200, headers={"content-type": "text/event-stream"})

    async def __aenter__(self) -> _Events:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass

    async def __aiter__(self) -> AsyncIterator[Any]:
        for event in self._events:
            yield event


class _Client:
    def __init__(self, events: list[Any]) -> None:
        self._events = events

    async def post(self, *args: Any, **kwargs: Any) -> _Events:
        return _Events(self._events)


@pytest.mark.parametrize("api", ["chat", "responses"])
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_stream_parses_or_raises_a_typed_error(api: Api, data: st.DataObject) -> None:
    events = data.draw(events_for(api))
    deltas: list[ModelDelta] = []
    request = ModelRequest(messages=REQUEST.messages, on_delta=deltas.append)
    m = model(api)
    client = cast(Any, _Client(events))

    async def go() -> None:
        check(await m._stream(client, "/x", {}, request, {}))

    with contextlib.suppress(TieredError):
        anyio.run(go)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt_tokens", {}),
        ("prompt_tokens", 10**15),
        ("prompt_tokens", -1),
        ("prompt_tokens", True),
        ("completion_tokens", "7"),
        ("completion_tokens", math.inf),
    ],
)
def test_bad_token_counts_are_bad_model_response(field: str, value: Any) -> None:
    body = copy.deepcopy(CHAT)
    body["usage"][field] = value
    raw = json.dumps(body).encode()
    with pytest.raises(BadModelResponse, match=field):
        model("chat")._read(raw, 200, REQUEST)


@pytest.mark.parametrize(
    "message",
    [{"content": [None]}, {"content": 5}, {"tool_calls": [{"id": 1}]}, {"tool_calls": "x"}],
)
def test_malformed_messages_keep_the_usage(message: dict[str, Any]) -> None:
    body = copy.deepcopy(CHAT)
    body["choices"][0]["message"] = message
    raw = json.dumps(body).encode()
    with pytest.raises(BadModelResponse) as info:
        model("chat")._read(raw, 200, REQUEST)
    assert info.value.usage is not None
    assert info.value.usage.input_tokens == 3
