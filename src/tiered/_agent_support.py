"""Helpers for `Agent.run`: streaming a run's deltas, and the cap for a truncated answer."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from tiered._catalog import ModelSpec
from tiered._errors import OutputTruncated, UserError
from tiered._messages import DeltaCallback, ModelDelta, ModelRequest, ModelResponse

__all__ = ("AgentStream", "open_stream", "retry_cap", "truncated")

ResultT = TypeVar("ResultT")


@dataclass(frozen=True, slots=True)
class _Done(Generic[ResultT]):
    value: ResultT


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


class AgentStream(Generic[ResultT]):
    """An agent run as it happens: iterate for each `TextDelta` / `ToolCallDelta`; the last
    item is the run's `AgentResult` (also in `result`). A failed run raises its error from
    the iteration."""

    def __init__(self, receive: MemoryObjectReceiveStream[Any]) -> None:
        self._receive = receive
        self._result: _Done[ResultT] | None = None

    @property
    def result(self) -> ResultT:
        """The run's result, once the iteration has reached it."""
        if self._result is None:
            raise UserError("the run has not finished: iterate the stream to its end first")
        return self._result.value

    async def __aiter__(self) -> AsyncIterator[ModelDelta | ResultT]:
        async for item in self._receive:
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _Done):
                self._result = item
                yield item.value
                return
            yield item


@asynccontextmanager
async def open_stream(
    run: Callable[[DeltaCallback], Awaitable[ResultT]],
) -> AsyncIterator[AgentStream[ResultT]]:
    """Start `run(on_delta)` in a task and stream what it sends; leaving the block early
    cancels the run."""
    send, receive = anyio.create_memory_object_stream[Any](math.inf)
    stream: AgentStream[ResultT] = AgentStream(receive)

    async def drive() -> None:
        with send:
            try:
                result = await run(send.send_nowait)
            except Exception as exc:  # handed to the reader, which raises it
                send.send_nowait(_Failed(exc))
            else:
                send.send_nowait(_Done(result))

    failure: Exception | None = None
    with receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drive)
            try:
                yield stream
            except Exception as exc:  # re-raised below as itself, not in an ExceptionGroup
                failure = exc
            finally:
                tg.cancel_scope.cancel()
    if failure is not None:
        raise failure


def retry_cap(exc: OutputTruncated, request: ModelRequest, spec: ModelSpec) -> int | None:
    """A larger `max_output_tokens` for one retry of a truncated answer, or None when the
    model's spec allows no more: double what was capped (or produced), at most the spec's
    `max_output_tokens`; with nothing known, the spec's limit itself."""
    produced = exc.usage.output_tokens if exc.usage is not None else 0
    used = max(request.max_output_tokens or 0, produced)
    cap = spec.max_output_tokens if used == 0 else min(2 * used, spec.max_output_tokens)
    return cap if cap > used else None


def truncated(response: ModelResponse, request: ModelRequest) -> OutputTruncated:
    """The `OutputTruncated` for an answer that stopped at the token cap, whatever the
    model (a local or custom one may only report `finish_reason="length"`): truncated
    text is never taken as an output."""
    error = OutputTruncated(
        f"model {response.model_name!r} stopped at its output-token cap before finishing: "
        "raise max_output_tokens, ask for a shorter answer, or use a larger tier",
        model=response.model_name,
        max_output_tokens=request.max_output_tokens,
        partial=response.message.content,
    )
    error.usage = response.usage
    return error
