"""A run's events for one consumer: a bounded buffer with backpressure, safe to leave early.

`Orchestrator.stream(...)` is an async context manager, not an async generator, so no
`yield` happens inside a task group: the run is a task the context owns, and leaving
the block early cancels it. Emitting stays synchronous (bookkeeping must not be
interrupted); the run waits for room at its safe points (before each subtask and each
attempt), so the buffer holds at most `max_buffer` plus what is already in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from tiered._events import RunEvent

if TYPE_CHECKING:
    from tiered._result import RunResult

__all__ = ("EventChannel", "EventStream", "open_stream")


class EventChannel:
    """One producer (the run), one consumer; `emit` never blocks, `wait_for_room` does."""

    __slots__ = ("_buffer", "_closed", "_drained", "_ready", "max_buffer")

    def __init__(self, max_buffer: int = 256) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self.max_buffer = max_buffer
        self._buffer: deque[RunEvent] = deque()
        self._closed = False
        self._ready = anyio.Event()
        self._drained = anyio.Event()

    def emit(self, event: RunEvent) -> None:
        """Queue `event` for the consumer (dropped once the channel is closed)."""
        if self._closed:
            return
        self._buffer.append(event)
        self._ready.set()

    async def wait_for_room(self) -> None:
        """Block while the consumer is `max_buffer` events behind."""
        while len(self._buffer) >= self.max_buffer and not self._closed:
            if self._drained.is_set():
                self._drained = anyio.Event()
            await self._drained.wait()

    def close(self) -> None:
        """No more events; the consumer drains what is left, then stops."""
        self._closed = True
        self._ready.set()
        self._drained.set()

    def __len__(self) -> int:
        return len(self._buffer)

    async def next(self) -> RunEvent | None:
        """The next event, or None once closed and drained."""
        while not self._buffer:
            if self._closed:
                return None
            if self._ready.is_set():
                self._ready = anyio.Event()
            await self._ready.wait()
        event = self._buffer.popleft()
        if len(self._buffer) < self.max_buffer:
            self._drained.set()
        return event


class EventStream:
    """What `async with orchestrator.stream(...) as events` gives: iterate for events."""

    def __init__(self, channel: EventChannel) -> None:
        self._channel = channel
        self.result: RunResult | None = None
        """The run's result once it has finished (also on the `run.finished` event)."""

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[RunEvent]:
        while True:
            event = await self._channel.next()
            if event is None:
                return
            yield event


@asynccontextmanager
async def open_stream(
    run: Callable[[EventChannel], Awaitable[RunResult]], *, max_buffer: int
) -> AsyncIterator[EventStream]:
    """Start `run(channel)` as a task owned by this context; cancel it if the block ends first.

    A run that raised (e.g. `PlanInvalid`) re-raises here when the block ends, after its
    `run.finished` event was delivered.
    """
    channel = EventChannel(max_buffer)
    stream = EventStream(channel)
    failure: list[BaseException] = []
    finished = anyio.Event()

    async def runner() -> None:
        try:
            stream.result = await run(channel)
        except Exception as exc:
            failure.append(exc)
        finally:
            channel.close()
            finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        try:
            yield stream
        finally:
            if not finished.is_set():
                tg.cancel_scope.cancel()  # the consumer left early: stop the run's calls
    if failure:
        raise failure[0]
