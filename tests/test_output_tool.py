"""`Agent.output_tool`: the tool's result is the agent's output, with no turn to copy it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tiered import (
    Agent,
    ModelRetry,
    RunContext,
    ScriptedModel,
    Tier,
    ToolResultMessage,
    UserError,
    UserMessage,
    default_catalog,
    tool,
)
from tiered.models import call

pytestmark = pytest.mark.anyio

NANO = default_catalog()["gpt-5.4-nano"]
PRICES = {"A-1": 300, "A-2": 450}


class Total(BaseModel):
    total_cents: int
    orders: list[str]


@tool(in_thread=False)
def add_up(order_ids: list[str]) -> Total:
    """Sum the orders' prices.

    Args:
        order_ids: Order ids, like A-1.
    """
    missing = [o for o in order_ids if o not in PRICES]
    if missing:
        raise KeyError(f"unknown orders {missing}")
    return Total(total_cents=sum(PRICES[o] for o in order_ids), orders=order_ids)


@tool(in_thread=False)
def shout(text: str) -> str:
    """Upper-case the text.

    Args:
        text: Any text.
    """
    return text.upper()


@tool(in_thread=False)
def wrong_shape(order_ids: list[str]) -> dict[str, int]:
    """Returns something that is not a Total.

    Args:
        order_ids: Order ids.
    """
    return {"count": len(order_ids)}


class Summer(Agent[Total]):
    """Adds up orders with its tool."""

    instructions = "Call add_up with the order ids."
    tools = (add_up,)
    output_tool = "add_up"
    output_type = Total


async def test_the_tools_result_is_the_output_after_one_model_call() -> None:
    model = ScriptedModel([call("add_up", {"order_ids": ["A-1", "A-2"]})], spec=NANO)
    result = await Summer().run("A-1 and A-2", model=model)
    assert result.output == Total(total_cents=750, orders=["A-1", "A-2"])
    assert result.turns == 1
    assert result.usage.requests == 1
    assert isinstance(result.messages[-1], ToolResultMessage)
    model.assert_complete()
    # one call a turn: the first result ends the run, so a second call would be wasted
    assert model.requests[0].parallel_tool_calls is False


async def test_a_failing_tool_call_goes_back_to_the_model_and_the_next_result_is_the_output() -> (
    None
):
    model = ScriptedModel(
        [call("add_up", {"order_ids": ["B-9"]}), call("add_up", {"order_ids": ["A-1"]})],
        spec=NANO,
    )
    result = await Summer().run("A-1", model=model)
    assert result.output == Total(total_cents=300, orders=["A-1"])
    assert result.turns == 2
    error = model.requests[1].messages[-1]
    assert isinstance(error, ToolResultMessage)
    assert error.is_error
    assert "unknown orders" in error.content


async def test_validate_output_still_checks_a_tool_output_and_sends_the_model_back() -> None:
    class OnlyOne(Summer):
        async def validate_output(self, output: Total, ctx: RunContext[None]) -> Total:
            if len(output.orders) != 1:
                raise ModelRetry("add up exactly one order")
            return output

    model = ScriptedModel(
        [call("add_up", {"order_ids": ["A-1", "A-2"]}), call("add_up", {"order_ids": ["A-2"]})],
        spec=NANO,
    )
    result = await OnlyOne().run("A-2", model=model)
    assert result.output.total_cents == 450
    assert model.requests[1].messages[-1] == UserMessage(content="add up exactly one order")


async def test_other_tools_calls_do_not_end_the_run() -> None:
    agent = Summer(tools=(shout, add_up))
    model = ScriptedModel(
        [call("shout", {"text": "a-1"}), call("add_up", {"order_ids": ["A-1"]})], spec=NANO
    )
    result = await agent.run("a-1", model=model)
    assert result.output.total_cents == 300
    assert result.turns == 2


async def test_a_free_text_agent_takes_the_tools_text_as_its_output() -> None:
    agent = Agent(name="shouter", tools=(shout,), output_tool="shout")
    model = ScriptedModel([call("shout", {"text": "hello"})], spec=NANO)
    result = await agent.run("hello", model=model)
    assert result.output == "HELLO"


async def test_a_tool_that_returns_something_else_than_the_output_type_is_a_user_error() -> None:
    agent = Summer(tools=(wrong_shape,), output_tool="wrong_shape")
    model = ScriptedModel([call("wrong_shape", {"order_ids": ["A-1"]})], spec=NANO)
    with pytest.raises(UserError, match="output_tool 'wrong_shape' returned a value that is not"):
        await agent.run("A-1", model=model)


def test_an_output_tool_the_agent_does_not_have_is_refused_at_construction() -> None:
    with pytest.raises(UserError, match="output_tool 'add_up' is not one of its tools"):
        Agent(name="x", tier=Tier.NANO, output_tool="add_up", output_type=Total)


async def test_an_agent_without_an_output_tool_keeps_parallel_calls() -> None:
    model = ScriptedModel([call("shout", {"text": "a"}), "done"], spec=NANO)
    await Agent(name="plain", tools=(shout,)).run("a", model=model)
    assert model.requests[0].parallel_tool_calls is True
