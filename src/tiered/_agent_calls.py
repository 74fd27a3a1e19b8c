"""One model call and one turn of tool calls, as `Agent.run` makes them: the call metered
under a reservation of its worst case (a truncated answer retried once with a larger cap),
its charges tallied; the tool calls told to an observer."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from tiered._agent_support import retry_cap, truncated
from tiered._context import RunContext
from tiered._errors import ModelError, OutputTruncated
from tiered._ledger import Charge, Ledger
from tiered._messages import ModelRequest, ModelResponse, ToolCall, ToolResultMessage
from tiered._metering import metered_call
from tiered._ratelimit import estimate_input_tokens
from tiered._tool import ToolSet
from tiered._usage import NO_USAGE, Usage
from tiered.models import Model

__all__ = (
    "Tally",
    "ToolObserver",
    "after_failed_call",
    "metered_ask",
    "open_call",
    "run_tools",
)


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
    it booked (`exc.charges`) so the caller can count them. `TurnLoop.run` writes the same
    steps out inline (no coroutine frame of this on every in-flight stack): keep the two
    alike."""
    with open_call(model, request, ledger, request.max_output_tokens or cap) as calls:
        try:
            response = await model.request(request)
            if response.finish_reason == "length":
                raise truncated(response, request)
        except Exception as exc:
            calls.failed(exc)  # its usage booked, or possibly billed, or released
            exc.charges = list(calls.charges)  # type: ignore[attr-defined]
            raise
        calls.succeeded(response.usage)
    return response, list(calls.charges)


@dataclass(slots=True, eq=False)
class Tally:
    """What one agent run's calls used and cost, summed from the charges the ledger booked
    (a possibly-billed worst case is neither usage nor cost: the ledger keeps it apart).
    The turn loop is its own tally (one object fewer per in-flight run)."""

    usage: Usage = NO_USAGE
    cost: Decimal = Decimal(0)
    equivalent_cost: Decimal = Decimal(0)

    def add(self, charges: Iterable[Charge]) -> None:
        """Count `charges`."""
        for c in charges:
            if c.possibly_billed:
                continue
            if self.usage is NO_USAGE:  # the first call: share its frozen Usage, no sum
                self.usage, self.cost, self.equivalent_cost = c.usage, c.cost, c.equivalent_cost
            else:
                self.usage = self.usage + c.usage
                self.cost += c.cost
                self.equivalent_cost += c.equivalent_cost

    def failed(self, exc: ModelError) -> None:
        """Count what a failed call booked (`exc.charges`) and put the run's usage so far
        on `exc`."""
        self.add(getattr(exc, "charges", ()))
        exc.usage = self.usage


def open_call(model: Model, request: ModelRequest, ledger: Ledger, cap: int) -> metered_call:
    """The metering of one model call: its worst case reserved (raises `BudgetExceeded`).
    Use it as `with open_call(...) as calls:` around `model.request(request)`."""
    return metered_call(ledger, model.spec, estimate_input_tokens(request, upper_bound=True), cap)


async def after_failed_call(
    model: Model, request: ModelRequest, ctx: RunContext[Any], tally: Tally, exc: ModelError
) -> tuple[ModelResponse, list[Charge]]:
    """A turn's model call failed with `exc` (its charges in `exc.charges`): tally them and
    raise it with the run's usage so far, unless the answer was cut off at the token cap
    and the model's spec allows a larger one: then the call is made again, once, and its
    answer and charges returned (`OutputTruncated` when the retry was cut off too)."""
    if not isinstance(exc, OutputTruncated):
        tally.failed(exc)
        raise exc
    bigger = retry_cap(exc, request, model.spec)  # reads this call's own usage
    tally.failed(exc)
    if bigger is None:
        raise exc
    ctx.log.info("output.truncated", turn=ctx.turn, retry_max_output_tokens=bigger)
    retry = replace(request, max_output_tokens=bigger)
    try:
        return await metered_ask(model, retry, ctx.ledger, bigger)
    except ModelError as again:
        tally.failed(again)
        raise


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
