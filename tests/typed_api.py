"""The public API as a user writes it, checked by `mypy --strict` (not a pytest module).

Nothing here runs in the test suite (pytest collects only `test_*.py`): annotated
assignments make mypy fail when a public signature stops inferring what a user expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel

from tiered import (
    Agent,
    AgentResult,
    Budget,
    Ledger,
    ModelRequest,
    RunContext,
    ScriptedModel,
    Tier,
    Tool,
    Usage,
    default_catalog,
    tool,
)
from tiered.models import RetryingModel, ScriptStep, call


@dataclass
class Deps:
    orders: dict[str, int]


class LookupOrder(Tool):
    """Look an order up by its id."""

    class Args(BaseModel):
        order_id: str

    async def run(self, args: Args, ctx: RunContext[Deps]) -> int:
        return ctx.deps.orders[args.order_id]


class Untyped(Tool):
    """A tool that takes the context unparametrized, as in the design sketch."""

    class Args(BaseModel):
        text: str

    async def run(self, args: Args, ctx: RunContext) -> str:
        return args.text.upper()


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


@tool(timeout=5.0, in_thread=False)
async def order_count(ctx: RunContext[Deps]) -> int:
    """How many orders there are."""
    return len(ctx.deps.orders)


class Refund(BaseModel):
    order_id: str
    amount_cents: int


class RefundDrafter(Agent[Refund]):
    """Drafts a refund for one order."""

    tier = Tier.NANO
    instructions = "Draft a refund."
    tools = (LookupOrder(), add, order_count)
    output_type = Refund

    async def validate_output(self, output: Refund, ctx: RunContext[Deps]) -> Refund:
        return output


def script() -> list[ScriptStep]:
    return [call("lookup_order", {"order_id": "A1"}), {"order_id": "A1", "amount_cents": 5}]


async def responder(request: ModelRequest) -> ScriptStep:
    return "done"


async def use() -> None:
    spec = default_catalog()["gpt-5.4-nano"]
    model = ScriptedModel(script(), spec=spec)
    result: AgentResult[Refund] = await RefundDrafter().run(
        "refund A1", deps=Deps(orders={"A1": 5}), model=model, ledger=Ledger(Budget(requests=5))
    )
    refund: Refund = result.output
    cents: int = refund.amount_cents
    cost: Decimal = result.cost
    usage: Usage = result.usage
    assert cost == spec.cost(usage)
    assert cents
    model.assert_complete()

    summarizer = Agent(name="summarizer", instructions="Summarize.", tools=[Untyped()])
    text = await summarizer.run("long text", model=ScriptedModel(responder))
    print(text.output, text.turns, text.messages)

    # keyword-built agents infer no output type: parametrize the class to keep it
    drafter = Agent[Refund](name="drafter", output_type=Refund, tools=[LookupOrder()])
    drafted = await drafter.run("refund A1", model=ScriptedModel(script()), deps=Deps({"A1": 5}))
    order_id: str = drafted.output.order_id
    print(order_id)

    numbers: Agent[list[int]] = Agent(name="numbers", output_type=list[int])
    listed = await numbers.run("1 to 3", model=RetryingModel(ScriptedModel([{"result": [1]}])))
    first: int = listed.output[0]
    print(first)


# --- typed dependencies: an agent's `Deps` is checked against its tools and `deps=` -----


class CountOrders(Tool[Deps]):
    """How many orders the deps hold."""

    class Args(BaseModel):
        pass

    async def run(self, args: Args, ctx: RunContext[Deps]) -> int:
        return len(ctx.deps.orders)


class CountKeys(Tool[dict[str, int]]):
    """A tool written for plain dict deps."""

    class Args(BaseModel):
        pass

    async def run(self, args: Args, ctx: RunContext[dict[str, int]]) -> int:
        return len(ctx.deps)


class Counter(Agent[int, Deps]):
    """Counts orders; its tools read `Deps`."""

    output_type = int
    tools = (CountOrders(),)


class WrongTools(Agent[int, Deps]):
    """A tool whose context wants other deps is rejected (the ignore proves mypy says so:
    with `warn_unused_ignores` an unneeded ignore is itself an error)."""

    output_type = int
    tools = (CountKeys(),)  # type: ignore[assignment]


async def typed_deps() -> None:
    counted: AgentResult[int] = await Counter().run(
        "count", deps=Deps(orders={"A1": 5}), model=ScriptedModel(["3"])
    )
    n: int = counted.output
    print(n)
    await Counter().run("count", deps="not a Deps", model=ScriptedModel(["3"]))  # type: ignore[arg-type]
    blocking: AgentResult[int] = Counter().run_sync(
        "count", deps=Deps(orders={}), model=ScriptedModel(["0"])
    )
    print(blocking.output)
