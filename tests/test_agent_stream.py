"""`Agent.run_stream`, `run(on_delta=...)` and the one retry of a truncated answer, through
`ScriptedModel` (which streams its scripted replies as a few deltas)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import anyio
import pytest

from tiered import (
    FREE,
    Agent,
    AgentResult,
    AgentStream,
    AssistantMessage,
    Ledger,
    ModelDelta,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    OutputTruncated,
    Pricing,
    ProviderError,
    RunError,
    ScriptedModel,
    TextDelta,
    Tier,
    ToolCallDelta,
    Usage,
    UserError,
    tool,
)
from tiered.models import call

pytestmark = pytest.mark.anyio

SPEC = ModelSpec(
    name="scripted-mini",
    tier=Tier.MINI,
    context_window=400_000,
    max_output_tokens=1_000,
    pricing=FREE,
)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Adder(Agent):
    """Adds numbers with a tool."""

    instructions = "Use add, then say the sum."
    tools = (add,)


async def test_run_stream_yields_deltas_then_the_result() -> None:
    model = ScriptedModel([call("add", {"a": 2, "b": 3}), "The sum is 5."], spec=SPEC)
    items: list[object] = []
    async with Adder().run_stream("2+3?", model=model) as stream:
        async for item in stream:
            items.append(item)
    *deltas, last = items
    assert isinstance(last, AgentResult)
    assert last.output == "The sum is 5."
    assert stream.result is last
    heads = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [h.name for h in heads] == ["add"]
    args = "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta))
    assert args == '{"a": 2, "b": 3}'
    text = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert len(text) > 1
    assert "".join(text) == "The sum is 5."


async def test_run_forwards_deltas_to_a_callback() -> None:
    seen: list[ModelDelta] = []
    model = ScriptedModel(["Hello, world."], spec=SPEC)
    result = await Agent(instructions="Greet.").run("hi", model=model, on_delta=seen.append)
    assert result.output == "Hello, world."
    assert "".join(d.text for d in seen if isinstance(d, TextDelta)) == "Hello, world."


async def test_without_a_callback_nothing_streams() -> None:
    model = ScriptedModel(["Hello."], spec=SPEC)
    await Agent(instructions="Greet.").run("hi", model=model)
    assert model.requests[0].on_delta is None


async def test_a_failed_run_raises_from_the_stream() -> None:
    model = ScriptedModel([ProviderError("down", model="scripted-mini")], spec=SPEC)
    streams: list[AgentStream[AgentResult[str]]] = []

    async def consume() -> None:
        async with Agent[str](instructions="x").run_stream("hi", model=model) as stream:
            streams.append(stream)
            async for _ in stream:
                pass

    with pytest.raises(ProviderError, match="down"):
        await consume()
    with pytest.raises(UserError, match="has not finished"):
        _ = streams[0].result


async def test_leaving_the_stream_early_cancels_the_run() -> None:
    started = anyio.Event()

    async def slow(request: ModelRequest) -> str:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    model = ScriptedModel(slow, spec=SPEC)
    with anyio.fail_after(5):
        async with Agent(instructions="x").run_stream("hi", model=model):
            await started.wait()
    assert len(model.requests) == 1


# --- truncation -------------------------------------------------------------------------


def truncated(cap: int | None, output_tokens: int) -> OutputTruncated:
    error = OutputTruncated("cut off", model="scripted-mini", max_output_tokens=cap, partial="{")
    error.usage = Usage(input_tokens=50, output_tokens=output_tokens, requests=1)
    return error


async def test_a_truncated_answer_is_retried_once_with_a_larger_cap() -> None:
    priced = replace(
        SPEC, pricing=Pricing(input=Decimal(1), cached_input=Decimal(0), output=Decimal(8))
    )
    model = ScriptedModel([truncated(100, 100), "done"], spec=priced)
    ledger = Ledger()
    agent = Agent(instructions="x", max_output_tokens=100)
    result = await agent.run("hi", model=model, ledger=ledger)
    assert result.output == "done"
    assert [r.max_output_tokens for r in model.requests] == [100, 200]
    assert result.usage.requests == 2  # the cut-off call is metered too
    assert result.usage.output_tokens >= 100
    assert ledger.usage.requests == 2
    assert result.cost == ledger.cost > 0  # the cut-off call is paid for, and counted


async def test_without_a_cap_the_default_cap_is_sent_and_at_the_spec_limit_no_retry() -> None:
    model = ScriptedModel([truncated(None, 0), "done"], spec=SPEC)
    with pytest.raises(OutputTruncated):
        await Agent(instructions="x").run("hi", model=model)
    assert [r.max_output_tokens for r in model.requests] == [1_000]  # min(spec, 4,096)


async def test_the_retry_never_exceeds_the_spec_limit() -> None:
    model = ScriptedModel([truncated(700, 700), "done"], spec=SPEC)
    await Agent(instructions="x", max_output_tokens=700).run("hi", model=model)
    assert [r.max_output_tokens for r in model.requests] == [700, 1_000]


async def test_truncated_at_the_spec_limit_raises_at_once() -> None:
    model = ScriptedModel([truncated(1_000, 1_000)], spec=SPEC)
    with pytest.raises(OutputTruncated):
        await Agent(instructions="x", max_output_tokens=1_000).run("hi", model=model)
    assert len(model.requests) == 1


async def test_truncated_again_raises_for_the_escalation_policy() -> None:
    model = ScriptedModel([truncated(100, 100), truncated(200, 200)], spec=SPEC)
    with pytest.raises(OutputTruncated) as info:
        await Agent(instructions="x", max_output_tokens=100).run("hi", model=model)
    assert len(model.requests) == 2
    assert info.value.partial == "{"
    assert info.value.usage is not None


def test_output_truncated_is_a_run_failure_not_retryable() -> None:
    error = truncated(10, 10)
    assert isinstance(error, ModelError)
    assert isinstance(error, RunError)
    assert not error.retryable
    assert error.max_output_tokens == 10


async def test_finish_reason_length_from_any_model_is_truncation() -> None:
    """A model that only reports finish_reason="length" (a local one) is caught too."""
    cut = ModelResponse(
        message=AssistantMessage(content="The sum is"),
        usage=Usage(output_tokens=100, requests=1),
        model_name="scripted-mini",
        finish_reason="length",
    )
    model = ScriptedModel([cut, cut], spec=SPEC)
    with pytest.raises(OutputTruncated) as info:
        await Agent(instructions="x", max_output_tokens=100).run("hi", model=model)
    assert [r.max_output_tokens for r in model.requests] == [100, 200]
    assert info.value.partial == "The sum is"
