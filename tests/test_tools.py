"""Tools as users write them, and every way a tool call can go wrong, through the agent loop."""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from pydantic import BaseModel, Field

from tiered import (
    Agent,
    AssistantMessage,
    EscalationRequested,
    ModelRetry,
    RunContext,
    ScriptedModel,
    SystemMessage,
    Tool,
    ToolResultMessage,
    UserError,
    UserMessage,
    tool,
)
from tiered.models import call

pytestmark = pytest.mark.anyio


@dataclass
class Deps:
    orders: dict[str, int] = field(default_factory=lambda: {"A1": 1250})
    threads: dict[str, int] = field(default_factory=dict)


class LookupOrder(Tool):
    """Look an order up by its id."""

    class Args(BaseModel):
        order_id: str = Field(description="The order's id, like A1")

    async def run(self, args: Args, ctx: RunContext[Deps]) -> dict[str, Any]:
        return {"order_id": args.order_id, "total_cents": ctx.deps.orders[args.order_id]}


class Item(BaseModel):
    sku: str
    qty: int = 1


class PlaceOrder(Tool):
    """Place an order."""

    name = "place"

    class Args(BaseModel):
        items: list[Item]
        note: str | None = None

    async def run(self, args: Args, ctx: RunContext[Deps]) -> str:
        return f"placed {sum(i.qty for i in args.items)} items"


@tool
def add(a: int, b: int = 2) -> int:
    """Add two integers.

    Longer explanation of adding.

    Args:
        a: The first addend.
        b (int): The second addend,
            which defaults to two.

    Returns:
        The sum of both.

    Raises:
        ValueError: Never.
    """
    return a + b


@tool(name="shout")
async def upper(text: str, times: int = 1) -> str:
    """Shout the text.

    :param text: What to shout.
    :param int times: How often.
    :returns: The text in capitals.
    :rtype: str
    :raises ValueError: Never.
    """
    return " ".join([text.upper()] * times)


@tool
def where(ctx: RunContext[Deps], label: str) -> str:
    """Record the thread this call runs in."""
    ctx.deps.threads[label] = threading.get_ident()
    return f"{label} for {ctx.agent}"


@tool(name="where_inline", in_thread=False)
def where_inline(ctx: RunContext[Deps]) -> str:
    """Record the thread this call runs in, without a worker thread."""
    ctx.deps.threads["inline"] = threading.get_ident()
    return "ok"


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot handle {reason}")


@tool
async def picky(n: int) -> str:
    """Wants an even number."""
    if n % 2:
        raise ModelRetry(f"n must be even, {n} is odd: send n={n + 1}")
    return "even"


@tool(timeout=0.05)
async def sleepy() -> str:
    """Never finishes in time."""
    await anyio.sleep(60)
    return "late"


@tool
def escalate(why: str) -> str:
    """Give the task back."""
    raise EscalationRequested(why, plan_shaped=True)


# --- definitions ----------------------------------------------------------------------


def test_tool_subclass_definition() -> None:
    d = LookupOrder().definition()
    assert d.name == "lookup_order"
    assert d.description == "Look an order up by its id."
    assert d.strict
    assert d.parameters["required"] == ["order_id"]
    assert d.parameters["additionalProperties"] is False
    assert d.parameters["properties"]["order_id"]["description"] == "The order's id, like A1"
    assert PlaceOrder().definition().name == "place"


def test_google_docstring() -> None:
    d = add.definition()
    assert d.name == "add"
    assert d.description == "Add two integers.\n\nLonger explanation of adding."
    props = d.parameters["properties"]
    assert props["a"]["description"] == "The first addend."
    assert props["b"]["description"] == (
        "The second addend, which defaults to two. Send null for the default (2)."
    )
    assert props["b"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert d.parameters["required"] == ["a", "b"]


def test_sphinx_docstring() -> None:
    d = upper.definition()
    assert d.name == "shout"
    assert d.description == "Shout the text."
    props = d.parameters["properties"]
    assert props["text"]["description"] == "What to shout."
    assert props["times"]["description"] == "How often. Send null for the default (1)."


def test_context_parameter_is_not_part_of_the_schema() -> None:
    d = where.definition()
    assert list(d.parameters["properties"]) == ["label"]
    assert d.description == "Record the thread this call runs in."


def test_tool_without_args_model_is_a_user_error() -> None:
    class NoArgs(Tool):
        """Forgot Args."""

    with pytest.raises(UserError, match="Args"):
        NoArgs().definition()


def test_duplicate_tool_names_are_a_user_error() -> None:
    with pytest.raises(UserError, match="'add'"):
        Agent(name="dup", tools=[add, add])._toolset(())


def test_star_args_are_a_user_error() -> None:
    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(UserError, match=r"\*args"):
        tool(spread)


# --- running tools through an agent ---------------------------------------------------


def _results(messages: tuple[Any, ...]) -> list[ToolResultMessage]:
    return [m for m in messages if isinstance(m, ToolResultMessage)]


async def test_tools_run_with_validated_arguments_and_defaults() -> None:
    deps = Deps()
    agent = Agent(name="clerk", tools=[LookupOrder(), PlaceOrder(), add, upper])
    model = ScriptedModel(
        [
            [
                call("lookup_order", {"order_id": "A1"}, id="c1"),
                call(
                    "place",
                    {"items": [{"sku": "X", "qty": None}, {"sku": "Y", "qty": 3}], "note": None},
                    id="c2",
                ),
                call("add", {"a": 40, "b": None}, id="c3"),
                call("shout", {"text": "hi", "times": 2}, id="c4"),
            ],
            "done",
        ]
    )
    result = await agent.run("go", deps=deps, model=model)
    assert result.output == "done"
    results = _results(result.messages)
    assert [(r.tool_call_id, r.name, r.content, r.is_error) for r in results] == [
        ("c1", "lookup_order", '{"order_id": "A1", "total_cents": 1250}', False),
        ("c2", "place", "placed 4 items", False),
        ("c3", "add", "42", False),
        ("c4", "shout", "HI HI", False),
    ]
    model.assert_complete()


async def test_sync_tools_run_in_a_worker_thread_unless_told_not_to() -> None:
    deps = Deps()
    agent = Agent(name="threads", tools=[where, where_inline])
    model = ScriptedModel([[call("where", {"label": "x"}), call("where_inline")], "done"])
    result = await agent.run("go", deps=deps, model=model)
    main = threading.get_ident()
    assert deps.threads["x"] != main
    assert deps.threads["inline"] == main
    assert _results(result.messages)[0].content == "x for threads"


async def test_tools_of_one_turn_run_concurrently() -> None:
    spans: dict[str, tuple[float, float]] = {}

    @tool
    async def first() -> str:
        """First slow tool."""
        start = anyio.current_time()
        await anyio.sleep(0.2)
        spans["first"] = (start, anyio.current_time())
        return "1"

    @tool
    async def second() -> str:
        """Second slow tool."""
        start = anyio.current_time()
        await anyio.sleep(0.2)
        spans["second"] = (start, anyio.current_time())
        return "2"

    agent = Agent(name="fanout", tools=[first, second])
    model = ScriptedModel([[call("first"), call("second")], "done"])
    result = await agent.run("go", model=model)
    (a_start, a_end), (b_start, b_end) = spans["first"], spans["second"]
    assert a_start < b_end
    assert b_start < a_end
    assert [r.content for r in _results(result.messages)] == ["1", "2"]  # call order kept


ERROR_CASES: list[tuple[str, Any, list[str]]] = [
    (
        "invalid-json",
        call("add", '{"a": 1,', id="bad"),
        ["arguments for 'add' are not valid JSON", "character"],
    ),
    (
        "schema-violation",
        call("place", {"items": [{"sku": "X", "qty": "two"}], "note": None}, id="bad"),
        ["do not match its schema", "at items/0/qty", "'two' is not of type 'integer'"],
    ),
    (
        "missing-field",
        call("add", {"b": 1}, id="bad"),
        ["do not match its schema", "'a' is a required property"],
    ),
    (
        "unknown-tool",
        call("delete_everything", {}, id="bad"),
        [
            "no tool named 'delete_everything'",
            "Tools you can call: add, explode, picky, place, sleepy",
        ],
    ),
    (
        "tool-raises",
        call("explode", {"reason": "tuesdays"}, id="bad"),
        ["'explode' failed: ValueError: cannot handle tuesdays"],
    ),
    (
        "tool-times-out",
        call("sleepy", id="bad"),
        ["'sleepy' timed out after 0.05s"],
    ),
    (
        "model-retry",
        call("picky", {"n": 3}, id="bad"),
        ["n must be even, 3 is odd: send n=4"],
    ),
]


@pytest.mark.parametrize(
    ("call_", "expected"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
async def test_tool_failures_go_back_to_the_model(call_: Any, expected: list[str]) -> None:
    agent = Agent(name="worker", tools=[add, PlaceOrder(), explode, picky, sleepy])
    model = ScriptedModel([call_, "recovered"])
    result = await agent.run("go", model=model)
    assert result.output == "recovered"
    assert result.turns == 2
    (error,) = _results(result.messages)
    assert error.is_error
    assert error.tool_call_id == "bad"
    for text in expected:
        assert text in error.content
    # the error is what the model saw on its next turn
    assert model.requests[1].messages[-1] == error


async def test_all_failures_in_one_turn_each_get_their_own_result() -> None:
    agent = Agent(name="worker", tools=[add, PlaceOrder(), explode, picky, sleepy])
    calls = [c[1] for c in ERROR_CASES]
    model = ScriptedModel([calls, [call("picky", {"n": 4})], "fine"])
    result = await agent.run("go", model=model)
    results = _results(result.messages)
    assert [r.tool_call_id for r in results[: len(calls)]] == [c.id for c in calls]
    assert all(r.is_error for r in results[: len(calls)])
    assert results[-1].content == "even"
    assert not results[-1].is_error
    assert result.output == "fine"


async def test_a_sync_tool_that_times_out_does_not_hold_the_run() -> None:
    gate = threading.Event()
    finished: list[bool] = []

    @tool(timeout=0.05)
    def stuck() -> str:
        """Blocks its worker thread."""
        finished.append(gate.wait(30))
        return "late"

    agent = Agent(name="worker", tools=[stuck])
    try:
        result = await agent.run("go", model=ScriptedModel([call("stuck"), "moved on"]))
        # the run came back while the worker thread was still blocked
        assert finished == []
    finally:
        gate.set()
    assert result.output == "moved on"
    (error,) = _results(result.messages)
    assert error.is_error
    assert "'stuck' timed out after 0.05s" in error.content


async def test_an_agent_cannot_call_another_agents_tool() -> None:
    orders = Agent(name="orders", tools=[LookupOrder()])
    maths = Agent(name="maths", tools=[add])
    model = ScriptedModel([call("lookup_order", {"order_id": "A1"}), "I cannot"])
    result = await maths.run("go", deps=Deps(), model=model)
    (error,) = _results(result.messages)
    assert error.is_error
    assert "no tool named 'lookup_order'" in error.content
    assert "Tools you can call: add." in error.content
    assert [t.name for t in model.requests[0].tools] == ["add"]
    assert "lookup_order" in [t.name for t in orders._toolset(()).definitions]


async def test_escalation_propagates_with_transcript_and_usage() -> None:
    agent = Agent(name="junior", instructions="Be careful.", tools=[escalate, add])
    model = ScriptedModel(
        [[call("add", {"a": 1, "b": 1})], call("escalate", {"why": "needs a plan"})]
    )
    with pytest.raises(EscalationRequested) as info:
        await agent.run("hard task", model=model)
    exc = info.value
    assert exc.reason == "needs a plan"
    assert exc.plan_shaped
    assert exc.usage is not None
    assert exc.usage.requests == 2
    assert exc.messages[0] == SystemMessage(content="Be careful.")
    assert exc.messages[1] == UserMessage(content="hard task")
    assert isinstance(exc.messages[-1], AssistantMessage)
    assert exc.messages[-1].tool_calls[0].name == "escalate"


async def test_escalation_in_a_concurrent_turn_cancels_the_other_calls() -> None:
    finished: list[str] = []

    @tool
    async def slow() -> str:
        """Takes a while."""
        await anyio.sleep(60)
        finished.append("slow")
        return "slow"

    agent = Agent(name="junior", tools=[escalate, slow])
    model = ScriptedModel([[call("slow"), call("escalate", {"why": "too big"})]])
    with pytest.raises(EscalationRequested, match="too big"):
        await agent.run("task", model=model)
    assert finished == []


class Status(enum.Enum):
    DONE = "done"


class Hit(BaseModel):
    path: str
    line: int


@dataclass
class Page:
    number: int
    hits: list[Hit]


@tool
def search(query: str) -> dict[str, Any]:
    """Search."""
    return {"hits": [Hit(path="a.py", line=3)], "page": Page(1, []), "status": Status.DONE}


async def test_tool_results_are_rendered_as_json_all_the_way_down() -> None:
    model = ScriptedModel(
        [call("search", {"query": "q"}), call("lookup_order", {"order_id": "A1"}), "ok"]
    )
    result = await Agent(name="s", tools=[search, LookupOrder()]).run(
        "go", deps=Deps(), model=model
    )
    first, second = _results(result.messages)
    assert json.loads(first.content) == {
        "hits": [{"path": "a.py", "line": 3}],
        "page": {"number": 1, "hits": []},
        "status": "done",
    }
    assert second.content == '{"order_id": "A1", "total_cents": 1250}'
