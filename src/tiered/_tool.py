"""Tools: the `Tool` base class, the `@tool` decorator and running the calls a model sends.

Whatever goes wrong in a tool call (bad JSON, a schema violation, an unknown tool, a
tool that raises or times out) becomes a tool result telling the model what to fix;
it never crashes the run. Only control flow (`EscalationRequested`) and cancellation
leave this module.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, get_type_hints, overload

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field, create_model
from pydantic_core import to_jsonable_python

from tiered._context import RunContext
from tiered._errors import EscalationRequested, ModelRetry, UserError
from tiered._messages import ToolCall, ToolDefinition, ToolResultMessage
from tiered._schema import StrictSchema

__all__ = ("Tool", "ToolSet", "tool")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Tool:
    """A function the model can call. Subclass with a nested `Args` model and `run`.

    The class docstring is the description the model sees; `name` defaults to the
    class name in snake_case; `timeout` (seconds) bounds one call.
    """

    name: str = ""
    description: str = ""
    Args: ClassVar[type[BaseModel]]
    timeout: float | None = 30.0
    """Seconds one call may take before the model is told it timed out; None: no limit."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__ or not cls.__dict__["name"]:
            cls.name = _snake(cls.__name__)
        if "description" not in cls.__dict__ or not cls.__dict__["description"]:
            cls.description = inspect.cleandoc(cls.__doc__ or "")

    async def run(self, args: Any, ctx: RunContext[Any]) -> Any:
        """Do the work; the return value (str, pydantic model, JSON-able) goes to the model."""
        raise NotImplementedError(f"{type(self).__name__} must implement `async def run`")

    @property
    def args_schema(self) -> StrictSchema:
        """The strict JSON schema of `Args`, built once per tool class."""
        cls = type(self)
        cached: StrictSchema | None = cls.__dict__.get("_args_schema")
        if cached is None:
            if not hasattr(cls, "Args"):
                raise UserError(f"tool {cls.__name__} needs a nested `class Args(BaseModel)`")
            cached = StrictSchema(cls.Args)
            cls._args_schema = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        fn: Callable[..., Any],
        *,
        timeout: float | None = 30.0,
    ) -> Tool:
        """A tool from a raw JSON schema (OpenAPI, MCP, BFCL): no pydantic model needed.

        `fn` gets the validated arguments as keywords; see `tiered._schema_tool`.
        """
        from tiered._schema_tool import SchemaTool

        return SchemaTool(name, description, parameters, fn, timeout=timeout)

    def definition(self) -> ToolDefinition:
        """What the model is told about this tool."""
        return ToolDefinition(
            name=self.name, description=self.description, parameters=self.args_schema.schema
        )


class _FunctionTool(Tool):
    """A tool made from a plain function by `@tool`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        description: str | None,
        timeout: float | None,
        in_thread: bool,
    ) -> None:
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._in_thread = in_thread
        self.name = name or fn.__name__
        summary, param_docs = _parse_docstring(fn.__doc__ or "")
        self.description = description or summary
        self.timeout = timeout
        self._takes_ctx, self._args_model = _args_model_for(fn, param_docs)
        self._schema = StrictSchema(self._args_model)

    @property
    def args_schema(self) -> StrictSchema:
        """The strict schema built from the function's signature."""
        return self._schema

    async def run(self, args: Any, ctx: RunContext[Any]) -> Any:
        """Call the function with the validated arguments."""
        kwargs = {k: getattr(args, k) for k in type(args).model_fields}
        call_args = (ctx,) if self._takes_ctx else ()
        if self._is_async:
            return await self._fn(*call_args, **kwargs)
        if self._in_thread:
            # abandon_on_cancel: a timeout returns at once; the thread finishes unobserved
            return await anyio.to_thread.run_sync(
                lambda: self._fn(*call_args, **kwargs), abandon_on_cancel=True
            )
        return self._fn(*call_args, **kwargs)


_GOOGLE_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns?|Yields?|Raises|Examples?|Notes?|Warnings?):\s*$"
)
_GOOGLE_ARG = re.compile(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")
_SPHINX_FIELD = re.compile(
    r"^:(param|parameter|arg|argument|key|keyword|type|returns?|rtype|raises?|except|"
    r"exception|yields?|ytype|var|ivar|cvar|vartype|meta)\b[^:]*:"
)
_SPHINX_PARAM = re.compile(r"^:param\s+(?:\w+\s+)?(\w+):\s*(.+)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and per-parameter docs.

    Understands Google style (`Args:` then `name: text`, continuation lines indented
    further) and Sphinx (`:param name: text`). Other sections (`Returns:`, `Raises:`,
    `:rtype:`...) are left out of the description.
    """
    params: dict[str, str] = {}
    summary_lines: list[str] = []
    section: str | None = None  # the Google section we are in; None in the description
    field_indent: int | None = None  # indent of the entry whose deeper lines continue it
    arg: str | None = None  # the parameter that entry documents; None: not a parameter
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if field_indent is not None and stripped and indent > field_indent:
            if arg is not None:
                params[arg] += " " + stripped
            continue
        header = _GOOGLE_SECTION.match(stripped)
        if header and not indent:
            section, field_indent = header.group(1), None
            continue
        if section is not None and stripped and not indent:
            section = None  # unindented text ends a section
        entry = None
        if section is None and _SPHINX_FIELD.match(stripped):
            entry = _SPHINX_PARAM.match(stripped)
        elif section in ("Args", "Arguments", "Parameters") and stripped:
            entry = _GOOGLE_ARG.match(stripped)
        elif section is None:
            field_indent = None
            summary_lines.append(line)
            continue
        if stripped:
            field_indent, arg = indent, entry.group(1) if entry else None
            if entry:
                params[entry.group(1)] = entry.group(2).strip()
    return "\n".join(summary_lines).strip(), params


def _args_model_for(
    fn: Callable[..., Any], param_docs: dict[str, str]
) -> tuple[bool, type[BaseModel]]:
    sig = inspect.signature(fn)
    hints = get_type_hints(fn)
    params = list(sig.parameters.values())
    takes_ctx = False
    if params:
        first = hints.get(params[0].name)
        origin = getattr(first, "__origin__", first)
        if origin is RunContext:
            takes_ctx = True
            params = params[1:]
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise UserError(f"@tool {fn.__name__}: *args/**kwargs cannot be described to a model")
        tp = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (tp, Field(default, description=param_docs.get(p.name)))
    model = create_model(f"{fn.__name__}_args", **fields)
    return takes_ctx, model


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 30.0,
    in_thread: bool = True,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 30.0,
    in_thread: bool = True,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function (sync or async) into a `Tool`.

    The docstring becomes the description and its `Args:` entries the field docs. A
    first parameter typed `RunContext` receives the run context. A sync function runs
    in a worker thread unless `in_thread=False` (cheaper for quick, pure functions).
    """

    def make(f: Callable[..., Any]) -> Tool:
        return _FunctionTool(
            f, name=name, description=description, timeout=timeout, in_thread=in_thread
        )

    return make(fn) if fn is not None else make


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

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
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
        try:
            raw = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return error(
                f"The arguments for {call.name!r} are not valid JSON ({exc.msg} at character "
                f"{exc.pos}). Send one JSON object that matches the tool's parameter schema."
            )
        schema = t.args_schema
        problems = schema.errors(raw)
        if problems:
            return error(
                f"The arguments for {call.name!r} do not match its schema: "
                + "; ".join(problems)
                + ". Fix these fields and call the tool again."
            )
        try:
            args = schema.validate(raw)
        except ValueError as exc:
            return error(f"The arguments for {call.name!r} are invalid: {exc}. Fix and retry.")
        started = time.perf_counter()
        try:
            if t.timeout is None:
                value = await t.run(args, ctx)
            else:
                with anyio.fail_after(t.timeout):
                    value = await t.run(args, ctx)
        except TimeoutError:
            return error(
                f"Tool {call.name!r} timed out after {t.timeout:g}s. Try simpler arguments "
                "or a different approach."
            )
        except ModelRetry as exc:
            return error(exc.message)
        except EscalationRequested:
            raise
        except Exception as exc:
            return error(
                f"Tool {call.name!r} failed: {type(exc).__name__}: {exc}. "
                "Check the arguments or try a different approach."
            )
        ctx.log.info(
            "tool.call", tool=call.name, latency_ms=round((time.perf_counter() - started) * 1e3, 2)
        )
        return ToolResultMessage(tool_call_id=call.id, name=call.name, content=_render(value))
