"""How sure a model was: token probabilities from the embedded model, up to the run."""

from __future__ import annotations

import math
import threading
from typing import Any

import anyio
import pytest

from tiered import Agent, AgentResult, Tool
from tiered._messages import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models import LocalModel, ScriptedModel
from tiered.models import _local as local_module
from tiered.models._local_protocol import Protocol, protocol_for
from tiered.models._local_replies import confidence
from tiered.models._local_server import Server

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


class _Native:
    """llama.cpp's native server stand-in streaming tokens with their log probabilities."""

    def __init__(self, tokens: list[tuple[str, float]]) -> None:
        self.tokens = tokens

    def handle_completions(self, body: dict[str, Any], on_chunk: Any) -> None:
        for text, logprob in self.tokens:
            lp = {"content": [_token(text, logprob)]}
            on_chunk({"choices": [{"text": text, "logprobs": lp}]})
        on_chunk({"choices": [{"text": "", "finish_reason": "stop"}]})


def _confidence(tokens: list[tuple[str, float]], body: dict[str, Any], protocol: Any) -> Any:
    """The confidence read from a reply streamed as `tokens` (text, logprob)."""
    server = Server.__new__(Server)
    server._native = _Native(tokens)
    return confidence(server._stream(body, threading.Event(), None), protocol)


def test_the_confidence_is_the_least_sure_token_that_is_not_whitespace() -> None:
    text = Protocol("text")
    plain = {"prompt": "p"}
    tokens = [('{"', -0.1), (" ", -6.0), ("city", -0.01), ("Paris", -1.5)]
    # the space's -6.0 is formatting, not a decision
    assert _confidence(tokens, plain, text) == pytest.approx(math.exp(-1.5))
    # a constrained reply's first token is the grammar's, not the model's choice
    forced = [('{"', -3.0), ("city", -0.01), ("Paris", -1.5)]
    assert _confidence(forced, plain, text) == pytest.approx(math.exp(-3.0))
    json_mode = Protocol("json", schema={"type": "object"})
    assert _confidence(forced, plain, json_mode) == pytest.approx(math.exp(-1.5))
    assert _confidence([], plain, text) is None  # no probabilities reported: nothing claimed


def test_the_requests_listed_before_the_calls_are_not_read_for_confidence() -> None:
    request = ModelRequest(
        messages=(UserMessage(content="Weather in Paris and Rome?"),),
        tools=(ToolDefinition(name="weather", description="The weather.", parameters=WEATHER),),
    )
    protocol = protocol_for(request, list_requests=True)
    assert protocol.requests_first
    body = {"prompt": "p", "json_schema": protocol.schema}
    listed = [
        ('{"', -0.2),
        ('requests": ["', -0.1),
        ("Paris and", -4.0),  # paraphrase of the question: not a decision
        ('"], "', -0.1),
        ('tool_calls": [{"name": "weather", "arguments": {"city": "', -0.05),
        ("Paris", -0.7),
        ('"}}]}', -0.3),
    ]
    assert _confidence(listed, body, protocol) == pytest.approx(math.exp(-0.7))
    # a final answer is read whole (but for the forced first token)
    answer = [('{"', -3.0), ('final_answer": "', -0.1), ("Sunny", -0.9), ('"}', -0.1)]
    assert _confidence(answer, body, protocol) == pytest.approx(math.exp(-0.9))


class _Server:
    """A `LocalModel` server stand-in answering one call with a known least-sure token."""

    started = True

    def __init__(self, min_logprob: float | None) -> None:
        self.min_logprob = min_logprob
        self.bodies: list[dict[str, Any]] = []

    def limiter(self) -> anyio.CapacityLimiter:
        return anyio.CapacityLimiter(1)

    def complete(self, body: dict[str, Any], *args: Any) -> dict[str, Any]:
        self.bodies.append(body)
        raw: dict[str, Any] = {
            "text": '{"final_answer": "Sunny."}',
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 50, "completion_tokens": 8},
        }
        if self.min_logprob is not None:  # the least sure token: "Sunny"
            raw["token_logprobs"] = [
                (0, '{"', -0.01),
                (2, "final", -0.01),
                (18, "Sunny", self.min_logprob),
            ]
        return raw


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("min_logprob", [math.log(0.42), None])
async def test_a_local_reply_carries_its_confidence(
    anyio_backend: str, min_logprob: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _Server(min_logprob)
    monkeypatch.setattr(local_module, "server_for", lambda weights, config: server)
    weather = Tool.from_schema("weather", "The weather.", WEATHER, str)
    agent: Agent[str] = Agent(name="w", instructions="Look up the weather.")
    result = await agent.run("Paris?", model=LocalModel(), extra_tools=[weather])
    assert server.bodies[0]["logprobs"] == 1  # asked for, on every call
    if min_logprob is None:
        assert result.confidence is None
    else:
        assert result.confidence == pytest.approx(0.42)


def _reply(confidence: float | None, *calls: str) -> ModelResponse:
    tool_calls = tuple(
        ToolCall(id=f"c{i}", name="weather", arguments=f'{{"city": "{c}"}}')
        for i, c in enumerate(calls)
    )
    return ModelResponse(
        message=AssistantMessage(content=None if calls else "Done.", tool_calls=tool_calls),
        usage=Usage(input_tokens=10, output_tokens=5, requests=1),
        model_name="scripted",
        confidence=confidence,
    )


async def _run(*replies: ModelResponse) -> AgentResult[str]:
    weather = Tool.from_schema("weather", "The weather.", WEATHER, lambda city: "sunny")
    agent: Agent[str] = Agent(name="w", instructions="Weather.", tools=[weather])
    return await agent.run("Paris and Rome?", model=ScriptedModel(list(replies)))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("confidences", "expected"),
    [
        ((0.6, 0.3, 0.05), 0.3),  # the calls' turns decide; the closing sentence does not
        ((None, 0.9, 0.9), None),  # one call turn unknown: the run's is unknown
        ((0.8, None, 0.2), None),
    ],
)
async def test_a_run_is_as_sure_as_its_least_sure_call(
    confidences: tuple[float | None, ...], expected: float | None
) -> None:
    first, second, last = confidences
    result = await _run(_reply(first, "Paris"), _reply(second, "Rome"), _reply(last))
    assert result.confidence == expected


@pytest.mark.anyio
async def test_a_run_that_calls_nothing_is_as_sure_as_its_answer() -> None:
    assert (await _run(_reply(0.25))).confidence == 0.25
    assert (await _run(_reply(None))).confidence is None
