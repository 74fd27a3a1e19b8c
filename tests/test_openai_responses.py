"""OpenAIModel on the Responses API, against the OpenAI emulator in-process: bodies the
real API accepts, reasoning carried across turns, usage, truncation and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

from openai_emulator import Call, Emulator, Reply, Step, Tokens
from openai_fixtures import LOOKUP, REFUND_SCHEMA
from tiered import Agent, OutputTruncated, Refused, Tier, tool
from tiered._errors import BadModelResponse, ModelError, ProviderError, UserError
from tiered._messages import (
    AssistantMessage,
    ModelRequest,
    OutputSchema,
    ReasoningItem,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models import OpenAIModel

pytestmark = pytest.mark.anyio

HELLO = ModelRequest(messages=(UserMessage(content="Say hello."),))


@asynccontextmanager
async def serve(emulator: Emulator, **kwargs: Any) -> AsyncIterator[OpenAIModel]:
    """An OpenAIModel on OpenAI's endpoint (so: the Responses API) talking to `emulator`."""
    kwargs.setdefault("api_key", "sk-test-key")
    async with httpx2.AsyncClient(transport=emulator.transport()) as http:
        yield OpenAIModel(kwargs.pop("name", "gpt-5.4-mini"), http_client=http, **kwargs)
    assert not emulator.rejected, [e.message for e in emulator.rejected]


def script(*steps: Step) -> Emulator:
    return Emulator(script=list(steps))


def test_default_api_is_responses_on_openai_and_chat_elsewhere() -> None:
    assert OpenAIModel("gpt-5.4-nano", api_key="k").api == "responses"
    assert OpenAIModel("gpt-5.4-nano", base_url="https://api.openai.com/v1").api == "responses"
    assert OpenAIModel("qwen3:8b", tier=Tier.NANO, base_url="http://gpu:8000/v1").api == "chat"
    assert OpenAIModel("gpt-5.4-nano", base_url="http://gpu:8000/v1", api="responses").api == (
        "responses"
    )
    assert OpenAIModel("gpt-5.4-nano", api="chat").api == "chat"
    with pytest.raises(UserError, match="api="):
        OpenAIModel("gpt-5.4-nano", api="completions")  # type: ignore[arg-type]


async def test_request_body_maps_every_option() -> None:
    emulator = script(Reply(text='{"amount_cents": 1}'))
    emulator.issued.add("gAAAA-earlier")
    request = ModelRequest(
        messages=(
            SystemMessage(content="Draft refunds."),
            UserMessage(content="Refund order A1."),
            AssistantMessage(
                tool_calls=(ToolCall(id="call_1", name="lookup_order", arguments='{"order_id":'),),
                reasoning=(
                    ReasoningItem(id="rs_1", encrypted_content="gAAAA-earlier", summary=("x",)),
                ),
            ),
            ToolResultMessage(tool_call_id="call_1", name="lookup_order", content="bad JSON"),
            AssistantMessage(content="Checking."),
            SystemMessage(content="Be brief."),
        ),
        tools=(LOOKUP,),
        tool_choice="lookup_order",
        parallel_tool_calls=False,
        output_schema=OutputSchema(name="Refund", schema=REFUND_SCHEMA),
        reasoning_effort="low",
        max_output_tokens=512,
        metadata={"agent": "refunds"},
    )
    async with serve(emulator) as model:
        await model.request(request)
    [sent] = emulator.requests
    assert sent.url == "https://api.openai.com/v1/responses"
    assert sent.body == {
        "model": "gpt-5.4-mini",
        "instructions": "Draft refunds.",
        "input": [
            {"role": "user", "content": "Refund order A1."},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "x"}],
                "encrypted_content": "gAAAA-earlier",
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "lookup_order",
                "arguments": '{"order_id":',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "bad JSON"},
            {"role": "assistant", "content": "Checking."},
            {"role": "developer", "content": "Be brief."},
        ],
        "tools": [
            {
                "type": "function",
                "name": "lookup_order",
                "description": "Look an order up by its id.",
                "parameters": LOOKUP.parameters,
                "strict": True,
            }
        ],
        "tool_choice": {"type": "function", "name": "lookup_order"},
        "parallel_tool_calls": False,
        "text": {
            "format": {
                "type": "json_schema",
                "name": "Refund",
                "schema": REFUND_SCHEMA,
                "strict": True,
            }
        },
        "reasoning": {"effort": "low"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "tiered-refunds",
        "max_output_tokens": 512,
    }


async def test_unset_options_are_left_out() -> None:
    emulator = script(Reply(text="hi"))
    async with serve(emulator, name="gpt-4.1-mini", spec=None, tier=Tier.MINI) as model:
        response = await model.request(HELLO)
    assert emulator.bodies[0] == {
        "model": "gpt-4.1-mini",
        "input": [{"role": "user", "content": "Say hello."}],
        "store": False,
    }
    assert response.message == AssistantMessage(content="hi")
    assert response.finish_reason == "stop"


async def test_reasoning_effort_goes_with_tools_and_temperature_does_not() -> None:
    emulator = script(Reply(calls=[Call("lookup_order", {"order_id": "A1"}, id="call_9")]))
    request = ModelRequest(
        messages=HELLO.messages, tools=(LOOKUP,), reasoning_effort="high", temperature=0.3
    )
    async with serve(emulator, name="gpt-5.4") as model:
        response = await model.request(request)
    body = emulator.bodies[0]
    assert body["reasoning"] == {"effort": "high"}
    assert "temperature" not in body
    assert response.message.tool_calls == (
        ToolCall(id="call_9", name="lookup_order", arguments='{"order_id": "A1"}'),
    )
    assert response.finish_reason == "tool_calls"
    [item] = response.message.reasoning
    assert item.encrypted_content in emulator.issued


async def test_usage_with_cached_and_reasoning_tokens() -> None:
    usage = Tokens(input=2_048, cached=1_920, output=700, reasoning=512)
    async with serve(script(Reply(text="done", usage=usage))) as model:
        response = await model.request(HELLO)
    assert response.usage == Usage(
        input_tokens=2_048,
        cached_input_tokens=1_920,
        output_tokens=700,
        reasoning_tokens=512,
        requests=1,
    )
    assert response.model_name == "gpt-5.4-mini"


async def test_prompt_cache_key_per_agent_and_cache_hits() -> None:
    """The same agent's stable prefix is cached from its second request on (the emulator
    caches prompts of 1024+ tokens, in 128-token steps, as the prompt caching guide says)."""
    long = "Follow the refund policy. " * 400
    request = ModelRequest(
        messages=(SystemMessage(content=long), UserMessage(content="A1")),
        metadata={"agent": "refunds"},
    )
    emulator = script(Reply(text="one"), Reply(text="two"))
    async with serve(emulator) as model:
        first = await model.request(request)
        second = await model.request(request)
    assert [b["prompt_cache_key"] for b in emulator.bodies] == ["tiered-refunds"] * 2
    assert first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens >= 1024
    assert second.usage.cached_input_tokens % 128 == 0


class Refund(BaseModel):
    order_id: str
    amount_cents: int


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Look an order up by its id."""
    return {"order_id": order_id, "price_cents": 3499, "late": True}


class Refunds(Agent[Refund]):
    """Works out a refund."""

    instructions = "Use lookup_order, then answer with the refund."
    tools = (lookup_order,)
    output_type = Refund
    reasoning_effort = "low"


async def test_reasoning_items_are_sent_back_on_the_next_turn() -> None:
    """With store=false the encrypted reasoning travels with the transcript; the emulator
    only accepts reasoning it issued itself."""
    emulator = script(
        Reply(calls=[Call("lookup_order", {"order_id": "A1"})], reasoning="Need the order."),
        Reply(text='{"order_id": "A1", "amount_cents": 3499}'),
    )
    async with serve(emulator) as model:
        result = await Refunds().run("Refund A1.", model=model)
    assert result.output == Refund(order_id="A1", amount_cents=3499)
    first, second = emulator.bodies
    assert first["include"] == ["reasoning.encrypted_content"]
    assert first["store"] is False
    kinds = [item.get("type", "message") for item in second["input"]]
    assert kinds == ["message", "reasoning", "function_call", "function_call_output"]
    assert second["input"][1]["encrypted_content"] in emulator.issued
    replies = [m for m in result.messages if isinstance(m, AssistantMessage)]
    assert [len(m.reasoning) for m in replies] == [1, 1]
    assert replies[0].reasoning[0].summary == ("Need the order.",)


async def test_forged_reasoning_is_rejected_as_the_api_would() -> None:
    emulator = script()
    forged = AssistantMessage(
        content="x", reasoning=(ReasoningItem(id="rs_x", encrypted_content="forged"),)
    )
    request = ModelRequest(messages=(*HELLO.messages, forged, UserMessage(content="again")))
    async with httpx2.AsyncClient(transport=emulator.transport()) as http:
        model = OpenAIModel("gpt-5.4-mini", api_key="k", http_client=http)
        with pytest.raises(ModelError, match="could not be verified") as info:
            await model.request(request)
    assert info.value.status == 400
    assert emulator.rejected


async def test_incomplete_at_max_output_tokens_is_output_truncated() -> None:
    usage = Tokens(input=40, output=64)
    emulator = script(Reply(text='{"amount_cents": 12', finish="length", usage=usage))
    request = ModelRequest(messages=HELLO.messages, max_output_tokens=64)
    async with serve(emulator) as model:
        with pytest.raises(OutputTruncated) as info:
            await model.request(request)
    assert info.value.max_output_tokens == 64
    assert info.value.partial == '{"amount_cents": 12'
    assert info.value.usage == Usage(input_tokens=40, output_tokens=64, requests=1)
    assert "max_output_tokens=64" in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(text="partial", finish="content_filter"), id="content-filter"),
        pytest.param(Reply(refusal="I can't help with that."), id="refusal"),
    ],
)
async def test_content_filter_and_refusal_are_refused(reply: Reply) -> None:
    async with serve(script(reply)) as model:
        with pytest.raises(Refused) as info:
            await model.request(HELLO)
    assert info.value.usage is not None
    assert not info.value.retryable


async def test_failed_response_is_provider_error() -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "status": "failed",
        "error": {"code": "server_error", "message": "The model failed."},
        "output": [],
        "usage": {"input_tokens": 5, "output_tokens": 0},
    }
    async with serve(script(httpx2.Response(200, json=body))) as model:
        with pytest.raises(ProviderError, match="The model failed") as info:
            await model.request(HELLO)
    assert info.value.retryable
    assert info.value.usage == Usage(input_tokens=5, requests=1)


async def test_malformed_output_keeps_its_usage() -> None:
    body = {
        "id": "resp_1",
        "status": "completed",
        "output": [{"type": "message", "content": [None]}],
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }
    async with serve(script(httpx2.Response(200, json=body))) as model:
        with pytest.raises(BadModelResponse, match=r"output\[0\]") as info:
            await model.request(HELLO)
    assert info.value.usage == Usage(input_tokens=7, output_tokens=3, requests=1)
