"""Running the tool calls a model sends (`ToolSet`); `Tool` and `@tool` are defined in
`_tool_def` and exported here too.

Whatever goes wrong in a tool call (bad JSON, a schema violation, an unknown tool, a
tool that raises or times out) becomes a tool result telling the model what to fix;
it never crashes the run. Only control flow (`EscalationRequested`) and cancellation
leave this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from tiered._context import RunContext
from tiered._effects import run_once
from tiered._errors import EscalationRequested, ModelRetry, UserError
from tiered._json import UntrustedJson, clip, parse_untrusted_object
from tiered._messages import ToolCall, ToolDefinition, ToolResultMessage
from tiered._tool_def import Tool, tool

__all__ = ("Tool", "ToolSet", "tool")


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    # models, dataclasses, enums and dates nested in lists and dicts become JSON too
    return json.dumps(to_jsonable_python(value, fallback=str))


class ToolSet:
    """The tools one agent may call, by name; runs a turn's calls concurrently."""

    __slots__ = ("_tools", "definitions")

    def __init__(self, tools: Sequence[Tool[Any]]) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        for t in tools:
            if t.name in self._tools:
                raise UserError(f"two tools are named {t.name!r}: give one a different `name`")
            self._tools[t.name] = t
        self.definitions: tuple[ToolDefinition, ...] = tuple(t.definition() for t in tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    async def run_calls(
        self, calls: Sequence[ToolCall], ctx: RunContext[Any]
    ) -> list[ToolResultMessage]:
        """Run every call of one turn concurrently; results come back in call order.

        An `EscalationRequested` from any tool ends the turn and propagates.
        """
        results: list[ToolResultMessage | None] = [None] * len(calls)
        escalation: list[EscalationRequested] = []

        async def one(i: int, call: ToolCall) -> None:
            try:
                results[i] = await self.run_call(call, ctx)
            except EscalationRequested as exc:
                escalation.append(exc)
                tg.cancel_scope.cancel()

        if len(calls) == 1:
            results[0] = await self.run_call(calls[0], ctx)
        else:
            async with anyio.create_task_group() as tg:
                for i, call in enumerate(calls):
                    tg.start_soon(one, i, call)
        if escalation:
            raise escalation[0]
        return [r for r in results if r is not None]

    async def run_call(self, call: ToolCall, ctx: RunContext[Any]) -> ToolResultMessage:
        """Run one call; every failure becomes an error result the model can act on."""

        def error(text: str) -> ToolResultMessage:
            ctx.log.info("tool.error", tool=call.name, error=text)
            return ToolResultMessage(
                tool_call_id=call.id, name=call.name, content=text, is_error=True
            )

        t = self._tools.get(call.name)
        if t is None:
            allowed = ", ".join(sorted(self._tools)) or "none"
            return error(
                f"There is no tool named {call.name!r} available to you. "
                f"Tools you can call: {allowed}."
            )
        parsed, problem = _parse_arguments(t, call)
        if problem is not None:
            return error(problem)
        if t.side_effects and ctx.effects is not None:  # exactly once under a journal
            return await run_once(
                ctx.effects, call, ctx, lambda c: self._invoke(t, call, parsed, c, error)
            )
        return await self._invoke(t, call, parsed, ctx, error)

    async def _invoke(
        self,
        t: Tool[Any],
        call: ToolCall,
        parsed: Any,
        ctx: RunContext[Any],
        error: Callable[[str], ToolResultMessage],
    ) -> ToolResultMessage:
        started = time.perf_counter()
        timed_out = False
        try:
            if t.timeout is None:
                value = await t.run(parsed, ctx)
            else:
                # our own scope, so a TimeoutError the tool raises is the tool's failure
                with anyio.move_on_after(t.timeout) as scope:
                    value = await t.run(parsed, ctx)
                timed_out = scope.cancelled_caught
            content = "" if timed_out else _render(value)
        except ModelRetry as exc:
            return error(exc.message)
        except EscalationRequested:
            raise
        except Exception as exc:
            return error(
                f"Tool {call.name!r} failed: {type(exc).__name__}: {exc}. "
                "Check the arguments or try a different approach."
            )
        if timed_out:
            return error(
                f"Tool {call.name!r} timed out after {t.timeout:g}s. Try simpler arguments "
                "or a different approach."
            )
        ctx.log.info(
            "tool.call", tool=call.name, latency_ms=round((time.perf_counter() - started) * 1e3, 2)
        )
        return ToolResultMessage(tool_call_id=call.id, name=call.name, content=content)


def _parse_arguments(t: Tool, call: ToolCall) -> tuple[Any, str | None]:
    """The validated arguments of `call`, or why not (for the model); never raises for input."""
    try:
        raw = parse_untrusted_object(call.arguments)
    except UntrustedJson as exc:
        why = exc.worded(f"The arguments for {call.name!r}", plural=True)
        return None, f"{why}. Send one JSON object that matches the tool's parameter schema."
    schema = t.args_schema
    try:
        problems = schema.errors(raw)
        if problems:
            return None, (
                f"The arguments for {call.name!r} do not match its schema: "
                + clip("; ".join(problems))
                + ". Fix these fields and call the tool again."
            )
        return schema.validate(raw), None
    except ModelRetry as exc:
        return None, exc.message
    except EscalationRequested:
        raise
    except Exception as exc:  # a ValidationError, or a field validator that broke
        return (
            None,
            f"The arguments for {call.name!r} are invalid: {clip(str(exc))}. Fix and retry.",
        )
