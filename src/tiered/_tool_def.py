"""Defining tools: the `Tool` base class (typed `Args`, a docstring the model reads) and
the `@tool` decorator that makes one from a plain function. Running the calls a model
sends is `_tool.ToolSet`'s job.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Generic, get_args, get_origin, get_type_hints, overload

import anyio.to_thread
from pydantic import BaseModel, Field, create_model

from tiered._context import DepsT, RunContext
from tiered._docstring import parse_docstring
from tiered._errors import UserError
from tiered._messages import ToolDefinition
from tiered._names import check_name, snake_case
from tiered._schema import StrictSchema

__all__ = ("Tool", "tool")


class Tool(Generic[DepsT]):
    """A function the model can call. Subclass with a nested `Args` model and `run`.

    `Tool[Deps]` types `ctx.deps`; an `Agent[..., Deps]` accepts only tools of its deps
    type. The class docstring is the description the model sees; `name` defaults to the
    class name in snake_case (`HTTPFetch` -> `http_fetch`) and must match
    `^[a-zA-Z0-9_-]{1,64}$`; `timeout` (seconds) bounds one call.
    """

    name: str = ""
    description: str = ""
    Args: ClassVar[type[BaseModel]]
    timeout: float | None = 30.0
    """Seconds one call may take before the model is told it timed out; None: no limit."""
    side_effects: bool = False
    """True when a call changes the world (a payment, an email): under a run journal it
    runs once per idempotency key (`ctx.idempotency_key`), and a resumed run gets the
    journaled result instead of running it again."""
    strict: bool = True
    """Send the arguments schema in OpenAI strict mode; False sends pydantic's schema
    non-strict (for `dict[str, X]`, `Any` and other types strict mode cannot express)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__ or not cls.__dict__["name"]:
            cls.name = snake_case(cls.__name__)
        else:
            check_name(cls.name, f"tool {cls.__name__}:")
        if "description" not in cls.__dict__ or not cls.__dict__["description"]:
            cls.description = inspect.cleandoc(cls.__doc__ or "")

    async def run(self, args: Any, ctx: RunContext[DepsT]) -> Any:
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
            cached = StrictSchema(cls.Args, strict=cls.strict, owner=f"tool {cls.name!r}")
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
        schema = self.args_schema
        return ToolDefinition(
            name=check_name(self.name, "tool"),
            description=self.description,
            parameters=schema.schema,
            strict=schema.strict,
        )


class _FunctionTool(Tool[Any]):
    """A tool made from a plain function by `@tool`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        description: str | None,
        timeout: float | None,
        in_thread: bool,
        strict: bool = True,
    ) -> None:
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._in_thread = in_thread
        self.name = check_name(name or fn.__name__, f"@tool {fn.__name__}:")
        summary, param_docs = parse_docstring(fn.__doc__ or "")
        self.description = description or summary
        self.timeout = timeout
        self.strict = strict
        self._takes_ctx, self._args_model = _args_model_for(fn, param_docs)
        self._schema = StrictSchema(self._args_model, strict=strict, owner=f"tool {self.name!r}")

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


def _args_model_for(
    fn: Callable[..., Any], param_docs: dict[str, str]
) -> tuple[bool, type[BaseModel]]:
    """The arguments model of `fn`'s parameters (after a leading `RunContext` one).

    `Annotated[int, Field(ge=0)]` metadata and defaults carry over, so pydantic checks
    the constraints and the schema shows them.
    """
    sig = inspect.signature(fn)
    hints = get_type_hints(fn, include_extras=True)
    params = list(sig.parameters.values())
    takes_ctx = False
    if params:
        first = hints.get(params[0].name)
        if get_origin(first) is Annotated:
            first = get_args(first)[0]
        origin = get_origin(first) or first
        if origin is RunContext:
            takes_ctx = True
            params = params[1:]
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise UserError(f"@tool {fn.__name__}: *args/**kwargs cannot be described to a model")
        tp = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        doc = param_docs.get(p.name)  # None would override an `Annotated` description
        fields[p.name] = (tp, Field(default, description=doc) if doc else Field(default))
    model = create_model(f"{fn.__name__}_args", **fields)
    return takes_ctx, model


@overload
def tool(fn: Callable[..., Any], /) -> Tool[Any]: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 30.0,
    in_thread: bool = True,
    strict: bool = True,
    side_effects: bool = False,
) -> Callable[[Callable[..., Any]], Tool[Any]]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 30.0,
    in_thread: bool = True,
    strict: bool = True,
    side_effects: bool = False,
) -> Tool[Any] | Callable[[Callable[..., Any]], Tool[Any]]:
    """Turn a typed function (sync or async) into a `Tool`.

    The docstring becomes the description and its `Args:` entries the field docs. A
    first parameter typed `RunContext` receives the run context. A sync function runs
    in a worker thread unless `in_thread=False` (cheaper for quick, pure functions).
    `Annotated[...]` constraints are enforced; `strict=False` sends a non-strict
    schema, for parameter types OpenAI strict mode cannot express (`dict[str, X]`, `Any`).
    `side_effects=True` runs the call once per idempotency key under a run journal.
    """

    def make(f: Callable[..., Any]) -> Tool[Any]:
        made = _FunctionTool(
            f,
            name=name,
            description=description,
            timeout=timeout,
            in_thread=in_thread,
            strict=strict,
        )
        made.side_effects = side_effects
        return made

    return make(fn) if fn is not None else make
