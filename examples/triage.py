"""Support-inbox triage: the whole mission in one small workflow.

The planner (flagship tier) turns the goal into typed subtasks for three executors:
`TicketTriage` (nano) reads a ticket, `OrderCheck` (nano) looks the order up with a
tool, and `RefundMath` (mini) adds up what is owed with the calculator. A Python
verifier checks `OrderCheck` against the order database, so a wrong answer from the
cheap tier is escalated for real; `--force-escalation` rejects every first output to
show the escalation path on demand. The planner composes the final answer.

    tiered run examples/triage.py [--goal TEXT] [--force-escalation] [--json]
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tiered import Agent, RunContext, Subtask, Tier, Workflow, tool
from tiered.tools import Calculator

ORDERS: dict[str, dict[str, Any]] = {
    "A-1001": {"item": "kettle", "price_cents": 3499, "days_late": 14},
    "A-1002": {"item": "toaster", "price_cents": 2599, "days_late": 0},
    "A-1003": {"item": "blender", "price_cents": 5999, "days_late": 6},
}
"""The example's order database (passed to tools as `deps`)."""


@tool(in_thread=False)
def lookup_order(ctx: RunContext[dict[str, dict[str, Any]]], order_id: str) -> dict[str, Any]:
    """Look an order up by its id.

    Args:
        order_id: The order id, like A-1001.
    """
    order = ctx.deps.get(order_id.strip().upper())
    if order is None:
        raise KeyError(f"no order {order_id!r}; known ids look like A-1001")
    return {"order_id": order_id.strip().upper(), **order}


class Ticket(BaseModel):
    ticket: str = Field(description="The customer's message, verbatim.")


class Triage(BaseModel):
    category: Literal["refund", "shipping", "question"]
    order_id: str | None = Field(description="The order id mentioned, like A-1001, or null.")


class TicketTriage(Agent[Triage]):
    """Reads one support ticket: its category and the order id it mentions."""

    tier = Tier.NANO
    instructions = (
        "Classify the support ticket as refund, shipping or question, and copy the order "
        "id it mentions (like A-1001), or null."
    )
    input_type = Ticket
    output_type = Triage
    max_output_tokens = 200


class OrderRef(BaseModel):
    order_id: str = Field(description="The order id, like A-1001.")


class OrderFacts(BaseModel):
    order_id: str
    item: str
    price_cents: int
    days_late: int


class OrderCheck(Agent[OrderFacts]):
    """Looks an order up and reports its item, price in cents and days late."""

    tier = Tier.NANO
    instructions = (
        "Call lookup_order with the order id, then report the order exactly as the tool "
        "returned it."
    )
    tools = (lookup_order,)
    tool_choice = "required"  # look it up first; never answer from memory
    input_type = OrderRef
    output_type = OrderFacts
    max_turns = 4
    max_output_tokens = 200


class RefundQuestion(BaseModel):
    rule: str = Field(description="The refund rule to apply, in one line.")


class Refund(BaseModel):
    total_cents: int = Field(description="Total refund owed, in cents.")
    explanation: str = Field(description="One line: which orders and why.")


class RefundMath(Agent[Refund]):
    """Works out the total refund owed from checked orders, using the calculator."""

    tier = Tier.MINI
    instructions = (
        "Apply the rule to the orders in the task's earlier outputs. Use the calculator "
        "for the sum, then give the total in cents and a one-line explanation."
    )
    tools = (Calculator(),)
    input_type = RefundQuestion
    output_type = Refund
    max_turns = 4
    max_output_tokens = 300


def order_matches_database(subtask: Subtask, output: OrderFacts) -> str | None:
    """Reject an OrderCheck whose facts differ from the database (a real check)."""
    order = ORDERS.get(output.order_id.strip().upper())
    if order is None:
        return f"{output.order_id!r} is not a known order"
    if (output.price_cents, output.days_late) != (order["price_cents"], order["days_late"]):
        return (
            f"reported price {output.price_cents} / {output.days_late} days late, but the "
            f"order says {order['price_cents']} / {order['days_late']}"
        )
    return None


GOAL = (
    'Ticket 1: "My kettle, order A-1001, arrived two weeks late. I want my money back." '
    'Ticket 2: "Where is my toaster? Order A-1002." '
    "Triage both tickets, check both orders, and work out the total refund owed if "
    "every order delivered late is refunded in full."
)

workflow = Workflow(
    executors=[TicketTriage(), OrderCheck(), RefundMath()],
    goal=GOAL,
    deps=ORDERS,
    verify={"OrderCheck": order_matches_database},
    description="support-inbox triage: classify, look up, refund",
)
