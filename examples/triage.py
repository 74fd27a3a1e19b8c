"""Support-inbox triage: the whole mission in one small workflow, checked end to end.

Shows cheap models plus checks plus escalation giving an answer you can trust. The
planner (flagship tier) turns the goal into typed subtasks for three executors:
`TicketTriage` (nano) reads a ticket, `OrderCheck` (nano) looks the order up with a
tool, and `RefundMath` (nano) asks the `refund_total` tool what is owed. The
deterministic work (looking orders up, the lateness rule, the sum) lives in tools, so
the small models only choose what to call, and the two tool agents' output *is* their
tool's result (`output_tool`): no turn in which a small model copies it wrongly. Every
executor has a Python verifier that checks its output against the ticket or the order
database, so a wrong answer from a cheap tier is escalated for real. Each executor's
arguments are its whole input (`uses_dependencies = False`), so every subtask runs in
the first wave. The planner gets the workflow's rules as `notes` (one subtask per ticket
and per order, one refund over all of them). The final answer is typed
(`RefundAnswer`), so the composer copies the total into a field, and it must pass
`answer_matches_refund`: a number no subtask produced (`check_numbers`), a total or
refunded list that is not `RefundMath`'s, an order id nobody mentioned, or a summary
that does not state the total (`states_amount`) fails the run as `answer_rejected`
instead of printing `succeeded`. `--force-escalation` rejects every first output to show
the escalation path on demand.

    tiered run examples/triage.py [--goal TEXT] [--force-escalation] [--json]
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from tiered import (
    Agent,
    Planner,
    RunContext,
    Subtask,
    Tier,
    Workflow,
    check_numbers,
    states_amount,
    tool,
)

ORDERS: dict[str, dict[str, Any]] = {
    "A-1001": {"item": "kettle", "price_cents": 3499, "days_late": 14},
    "A-1002": {"item": "toaster", "price_cents": 2599, "days_late": 0},
    "A-1003": {"item": "blender", "price_cents": 5999, "days_late": 6},
}
"""The example's order database (passed to tools as `deps`)."""


class Ticket(BaseModel):
    ticket: str = Field(description="The customer's message, verbatim.")


class Triage(BaseModel):
    category: Literal["refund", "shipping", "question"]
    order_id: str | None = Field(description="The order id mentioned, like A-1001, or null.")


class TicketTriage(Agent[Triage]):
    """Reads one support ticket: its category and the order id it mentions."""

    tier = Tier.NANO
    instructions = (
        "Classify the support ticket. category: refund when the customer asks for money "
        "back (even about a late delivery); shipping when they ask where an order is or "
        "when it arrives; question otherwise. order_id: the order id the ticket mentions "
        "(like A-1001), copied exactly, or null."
    )
    tool_choice = "none"  # answer at once: a ticket is read, not escalated
    uses_dependencies = False  # the ticket is its whole input: it runs in the first wave
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


@tool(in_thread=False)
def lookup_order(ctx: RunContext[dict[str, dict[str, Any]]], order_id: str) -> OrderFacts:
    """Look an order up by its id.

    Args:
        order_id: The order id, like A-1001.
    """
    order = ctx.deps.get(order_id.strip().upper())
    if order is None:
        raise KeyError(f"no order {order_id!r}; known ids look like A-1001")
    return OrderFacts(order_id=order_id.strip().upper(), **order)


class OrderCheck(Agent[OrderFacts]):
    """Looks an order up and reports its item, price in cents and days late."""

    tier = Tier.NANO
    instructions = "Call lookup_order with the order id."
    tools = (lookup_order,)
    tool_choice = "lookup_order"  # the first turn calls it: never answer from memory
    output_tool = "lookup_order"  # the order as the tool returned it is the output
    may_escalate = False  # a lookup: nothing to hand up
    uses_dependencies = False
    input_type = OrderRef
    output_type = OrderFacts
    max_turns = 4
    max_output_tokens = 200


class Refund(BaseModel):
    total_cents: int = Field(description="Total refund owed, in cents.")
    refunded: list[str] = Field(description="The order ids refunded (delivered late).")
    on_time: list[str] = Field(description="The order ids delivered on time (no refund).")
    unknown: list[str] = Field(description="Order ids not in the database.")


def refund_owed(orders: dict[str, dict[str, Any]], order_ids: list[str]) -> Refund:
    """The refund rule, in Python: every order delivered late is refunded in full."""
    refunded: list[str] = []
    on_time: list[str] = []
    unknown: list[str] = []
    total = 0
    for raw in order_ids:
        order_id = raw.strip().upper()
        order = orders.get(order_id)
        if order is None:
            unknown.append(order_id)
        elif order["days_late"] > 0:
            refunded.append(order_id)
            total += order["price_cents"]
        else:
            on_time.append(order_id)
    return Refund(total_cents=total, refunded=refunded, on_time=on_time, unknown=unknown)


@tool(in_thread=False)
def refund_total(ctx: RunContext[dict[str, dict[str, Any]]], order_ids: list[str]) -> Refund:
    """Apply the refund rule (late orders are refunded in full) and sum what is owed.

    Args:
        order_ids: Every order id the customers wrote about, like ["A-1001", "A-1002"].
    """
    return refund_owed(ctx.deps, order_ids)


class RefundQuestion(BaseModel):
    order_ids: list[str] = Field(description="Every order id in the tickets, like A-1001.")


class RefundMath(Agent[Refund]):
    """Works out the total refund owed for some orders with the refund_total tool."""

    tier = Tier.NANO
    instructions = "Call refund_total with every order id you are given."
    tools = (refund_total,)
    tool_choice = "refund_total"  # the first turn calls it: the tool applies the rule
    output_tool = "refund_total"  # the tool's answer is the answer: nothing to copy
    may_escalate = False
    uses_dependencies = False  # the tool looks the orders up: no OrderCheck to wait for
    input_type = RefundQuestion
    output_type = Refund
    max_turns = 4
    max_output_tokens = 200


class RefundAnswer(BaseModel):
    """The run's final answer, typed so the composer copies numbers instead of writing them."""

    total_refund_cents: int = Field(description="RefundMath's total_cents, copied exactly.")
    refunded_orders: list[str] = Field(description="RefundMath's refunded order ids.")
    summary: str = Field(description="One sentence: the total in cents and which orders.")


_ASKS_FOR_MONEY = re.compile(r"refund|money back|reimburse", re.IGNORECASE)


def triage_matches_ticket(subtask: Subtask, output: Triage) -> str | None:
    """Reject a triage whose order id is not the ticket's, or a refund request not called one."""
    ticket = str(subtask.arguments.get("ticket", "")).upper()
    if _ASKS_FOR_MONEY.search(ticket) and output.category != "refund":
        return f"the ticket asks for money back, so its category is refund, not {output.category}"
    mentioned = sorted(set(re.findall(r"[A-Z]-\d{4}", ticket)))
    got = output.order_id.strip().upper() if output.order_id else None
    if got is None and mentioned:
        return f"the ticket mentions {', '.join(mentioned)} but order_id is null"
    if got is not None and got not in mentioned:
        found = ", ".join(mentioned) or "no order id"
        return f"order_id {output.order_id!r} is not in the ticket (it mentions {found})"
    return None


def refund_matches_rule(subtask: Subtask, output: Refund) -> str | None:
    """Reject a refund that is not what the rule gives for the subtask's orders."""
    want = refund_owed(ORDERS, list(subtask.arguments.get("order_ids", [])))
    if output.total_cents != want.total_cents:
        return f"total_cents {output.total_cents} but refund_total gives {want.total_cents}"
    if sorted(o.strip().upper() for o in output.refunded) != sorted(want.refunded):
        return f"refunded {output.refunded} but refund_total gives {want.refunded}"
    return None


def order_matches_database(subtask: Subtask, output: OrderFacts) -> str | None:
    """Reject an OrderCheck of another order, or whose facts differ from the database."""
    asked = str(subtask.arguments.get("order_id", "")).strip().upper()
    if output.order_id.strip().upper() != asked:
        return f"the subtask asks about {asked}, but the output is for {output.order_id}"
    order = ORDERS.get(output.order_id.strip().upper())
    if order is None:
        return f"{output.order_id!r} is not a known order"
    if (output.price_cents, output.days_late) != (order["price_cents"], order["days_late"]):
        return (
            f"reported price {output.price_cents} / {output.days_late} days late, but the "
            f"order says {order['price_cents']} / {order['days_late']}"
        )
    return None


_ORDER_ID = re.compile(r"\b[A-Z]-\d{4}\b")


def answer_matches_refund(answer: RefundAnswer, outputs: dict[str, Any]) -> str | None:
    """The final-answer check: no number from nowhere (`check_numbers`), and the total,
    the refunded orders and every order id the summary names agree with `RefundMath`."""
    refunds = {sid: out for sid, out in outputs.items() if isinstance(out, Refund)}
    if not refunds:
        return check_numbers(answer, outputs) or "no RefundMath output to take the total from"
    name, refund = _whole_refund(refunds)
    problem = check_numbers(answer, {**outputs, name: refund})  # a sum of refunds counts
    if problem is not None:
        return problem
    if answer.total_refund_cents != refund.total_cents:
        got = answer.total_refund_cents
        return f"total_refund_cents is {got}, but {name} says {refund.total_cents}"
    if sorted(answer.refunded_orders) != sorted(refund.refunded):
        return f"refunded_orders is {answer.refunded_orders}, but {name} refunded {refund.refunded}"
    known = set(refund.refunded + refund.on_time + refund.unknown)
    strangers = sorted(set(_ORDER_ID.findall(answer.summary)) - known)
    if strangers:
        return f"the summary names {', '.join(strangers)}, which no ticket mentions"
    if not _states_total(answer.summary, refund.total_cents):
        return f"the summary must state the total refund ({refund.total_cents} cents)"
    return None


def _states_total(summary: str, cents: int) -> bool:
    """Whether the summary gives the total, in cents (3499, 3,499) or dollars ($34.99): a
    summary such as "Refund math failed." must not pass beside a right total."""
    if states_amount(summary, cents):
        return True
    return cents == 0 and re.search(r"\bno refund|\bnothing\b", summary, re.IGNORECASE) is not None


def _orders(refund: Refund) -> set[str]:
    return set(refund.refunded + refund.on_time + refund.unknown)


def _whole_refund(refunds: dict[str, Refund]) -> tuple[str, Refund]:
    """The refund over every order: one RefundMath output that covers them all, else the
    sum of outputs over disjoint orders (a plan with one RefundMath per order)."""
    every = set().union(*(_orders(r) for r in refunds.values()))
    for sid, refund in refunds.items():
        if _orders(refund) == every:
            return sid, refund
    parts: dict[frozenset[str], tuple[str, Refund]] = {}
    for sid, refund in refunds.items():  # the same orders twice count once
        parts.setdefault(frozenset(_orders(refund)), (sid, refund))
    chosen = [r for _, r in parts.values()]
    total = Refund(
        total_cents=sum(r.total_cents for r in chosen),
        refunded=sorted({o for r in chosen for o in r.refunded}),
        on_time=sorted({o for r in chosen for o in r.on_time}),
        unknown=sorted({o for r in chosen for o in r.unknown}),
    )
    return " + ".join(sid for sid, _ in parts.values()), total


PLANNING_NOTES = (
    "one TicketTriage per ticket (its text verbatim), one OrderCheck per order id, and one "
    "RefundMath with every order id; no other subtasks."
)

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
    output_type=RefundAnswer,
    verify={
        "TicketTriage": triage_matches_ticket,
        "OrderCheck": order_matches_database,
        "RefundMath": refund_matches_rule,
    },
    answer_check=answer_matches_refund,
    planner=Planner(notes=PLANNING_NOTES, lean=True),  # a 1.5B plans locally: fewer tokens
    description="support-inbox triage: classify, look up, refund (checked end to end)",
)
