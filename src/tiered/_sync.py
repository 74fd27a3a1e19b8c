"""Blocking entry points for scripts and notebooks: run a coroutine function to its result.

Outside an event loop this is `anyio.run`. Inside one (a Jupyter cell) a nested
`anyio.run` is refused, so the call runs on a worker thread with its own loop.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ("run_sync",)

T = TypeVar("T")


def _loop_running() -> bool:
    try:
        anyio.get_current_task()
    except RuntimeError:  # anyio's NoEventLoopError: plain synchronous code
        return False
    return True


def run_sync(fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
    """`await fn(*args, **kwargs)` from synchronous code, returning its result or raising."""
    call = functools.partial(fn, *args, **kwargs)
    if not _loop_running():
        return anyio.run(call)
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = anyio.run(call)
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=worker, name="tiered-run-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
