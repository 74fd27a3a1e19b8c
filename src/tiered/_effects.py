"""Side effects exactly once: a tool that declares `side_effects=True` runs at most once
per idempotency key while a journal is kept.

The key is stable across a crash and a resume (the subtask's id and identity, the tool,
its arguments in canonical form, and which such call this is), so the resumed run gets the
journaled result instead of paying twice, and the tool receives the same key
(`ctx.idempotency_key`) to pass on to an API that deduplicates (a payments API).
Guarantee: exactly once for a call that finished before the crash; at least once for
one in flight at the crash (it may have happened without being journaled).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tiered._context import RunContext
from tiered._messages import ToolCall, ToolResultMessage

__all__ = ("EffectLog", "SideEffectLog", "canonical_arguments", "run_once")


class SideEffectLog(Protocol):
    """Where side-effecting calls and their results are kept (the run journal)."""

    def lookup(self, key: str) -> tuple[str, bool] | None:
        """(content, is_error) of a call that already ran under `key`."""
        ...

    def record(self, key: str, tool: str, arguments: str, content: str, is_error: bool) -> None:
        """Keep a call's result, before it goes back to the model."""
        ...


def canonical_arguments(arguments: str) -> str:
    """The arguments as sorted, compact JSON (the same call always gives the same text)."""
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return arguments


class EffectLog:
    """Keys for one subtask's side-effecting calls, counted per (tool, arguments)."""

    __slots__ = ("_counts", "_scope", "store")

    def __init__(self, store: SideEffectLog, scope: str) -> None:
        self.store = store
        self._scope = scope
        self._counts: dict[tuple[str, str], int] = {}

    def key(self, tool: str, arguments: str) -> str:
        """The next call's idempotency key: the nth call of this tool with these arguments."""
        canon = canonical_arguments(arguments)
        n = self._counts.get((tool, canon), 0)
        self._counts[(tool, canon)] = n + 1
        text = f"{self._scope}\x1f{tool}\x1f{canon}\x1f{n}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


async def run_once(
    log: EffectLog,
    call: ToolCall,
    ctx: RunContext[Any],
    invoke: Callable[[RunContext[Any]], Awaitable[ToolResultMessage]],
) -> ToolResultMessage:
    """Answer from the journal if this call already ran; else run it and journal it.

    Only a successful result is kept: a failed call may not have happened, so it may run
    again.
    """
    key = log.key(call.name, call.arguments)
    done = log.store.lookup(key)
    if done is not None:
        content, is_error = done
        return ToolResultMessage(
            tool_call_id=call.id, name=call.name, content=content, is_error=is_error
        )
    result = await invoke(dataclasses.replace(ctx, idempotency_key=key))
    if not result.is_error:
        log.store.record(key, call.name, call.arguments, result.content, result.is_error)
    return result
