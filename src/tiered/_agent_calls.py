"""One model call and one turn of tool calls, as `Agent.run` makes them: the call metered
under a reservation of its worst case, the tool calls told to an observer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from tiered._agent_support import truncated
from tiered._context import RunContext
from tiered._ledger import Charge, Ledger
from tiered._messages import ModelRequest, ModelResponse, ToolCall, ToolResultMessage
from tiered._metering import metered_call
from tiered._ratelimit import estimate_input_tokens
from tiered._tool import ToolSet
from tiered._usage import Usage
from tiered.models import Model

__all__ = ("ToolObserver", "add_charges", "metered_ask", "run_tools")


class ToolObserver(Protocol):
    """Told of every tool call an agent run makes (the orchestrator turns these into events)."""

    def tool_called(self, call: ToolCall) -> None:
        """A call is about to run."""
        ...

    def tool_returned(self, call: ToolCall, result: ToolResultMessage, duration_s: float) -> None:
        """A call finished (`result.is_error` when the model is told it failed)."""
        ...


async def metered_ask(
    model: Model, request: ModelRequest, ledger: Ledger, cap: int
) -> tuple[ModelResponse, list[Charge]]:
    """One model call under a reservation of its worst case; a failure carries the charges
    it booked (`exc.charges`) so the caller can count them."""
    worst_input = estimate_input_tokens(request, upper_bound=True)
    with metered_call(ledger, model.spec, worst_input, request.max_output_tokens or cap) as calls:
        try:
            # no helper coroutine around the call: one frame fewer on every in-flight stack
            response = await model.request(request)
            if response.finish_reason == "length":
                raise truncated(response, request)
        except Exception as exc:
            calls.failed(exc)  # its usage booked, or possibly billed, or released
            exc.charges = list(calls.charges)  # type: ignore[attr-defined]
            raise
        calls.succeeded(response.usage)
    return response, list(calls.charges)


def add_charges(usage: Usage, charges: Any) -> Usage:
    """`usage` plus the reported usage of `charges` (a possibly-billed worst case is not usage)."""
    for c in charges:
        if not c.possibly_billed:
            usage = usage + c.usage
    return usage


async def run_tools(
    toolset: ToolSet,
    calls: Sequence[ToolCall],
    ctx: RunContext[Any],
    observer: ToolObserver | None,
) -> list[ToolResultMessage]:
    """Run one turn's tool calls, telling `observer` before and after."""
    if observer is None:
        return await toolset.run_calls(calls, ctx)
    for call in calls:
        observer.tool_called(call)
    started = time.perf_counter()
    results = await toolset.run_calls(calls, ctx)
    duration = round(time.perf_counter() - started, 4)
    by_id = {c.id: c for c in calls}
    for result in results:
        called = by_id.get(result.tool_call_id)
        if called is not None:
            observer.tool_returned(called, result, duration)
    return results
