"""Request pieces the OpenAI-client tests share: one function tool and one output schema."""

from __future__ import annotations

from typing import Any

from tiered._messages import ToolDefinition

LOOKUP = ToolDefinition(
    name="lookup_order",
    description="Look an order up by its id.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
)
"""A strict-ready function tool taking one order id."""

REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"amount_cents": {"type": "integer"}},
    "required": ["amount_cents"],
    "additionalProperties": False,
}
"""A strict-ready structured-output schema (sent as `Refund`)."""
