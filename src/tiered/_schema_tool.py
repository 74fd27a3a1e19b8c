"""Tools described by a raw JSON schema (OpenAPI, MCP, BFCL) rather than a pydantic model.

The schema is normalised (BFCL's "dict"/"float"/"tuple" spellings become JSON Schema
types), sent in strict mode when it can be made strict and with `strict: false`
otherwise, and every call is still validated against the schema the tool was given.
A name the API forbids (`math.factorial`) is sent as a legal one (`math_factorial`);
`original_name` keeps the name the tool was defined with.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread
import jsonschema
from jsonschema.exceptions import SchemaError

from tiered._context import RunContext
from tiered._errors import UserError
from tiered._messages import ToolDefinition
from tiered._schema import StrictSchema, _split_markers, strict_schema
from tiered._tool import Tool

__all__ = ("SchemaTool", "api_tool_name", "normalise_schema")

_LEGAL = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TYPE_ALIASES = {
    "dict": "object",
    "float": "number",
    "double": "number",
    "tuple": "array",
    "list": "array",
    "bool": "boolean",
    "int": "integer",
    "str": "string",
}
"""Type spellings seen in BFCL and hand-written schemas, and their JSON Schema names."""

_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "contains")
_STRICT_UNSUPPORTED = frozenset(
    {"patternProperties", "oneOf", "allOf", "not", "if", "then", "else", "dependentSchemas"}
)


def api_tool_name(name: str) -> str:
    """A name the OpenAI API accepts (^[a-zA-Z0-9_-]{1,64}$) for `name`; legal names pass."""
    if _LEGAL.match(name):
        return name
    legal = re.sub(r"[^a-zA-Z0-9_-]", "_", name) or "tool"
    if len(legal) > 64:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        legal = f"{legal[:55]}_{digest}"
    return legal


def normalise_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `schema` with BFCL-style types mapped to JSON Schema ("dict" -> "object").

    "any" loses its type (anything goes); a property without a type is left untyped.
    """
    out = copy.deepcopy(dict(schema))
    _normalise(out)
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def _normalise(node: Any) -> None:
    if not isinstance(node, dict):
        return
    t = node.get("type")
    if isinstance(t, str):
        if t.lower() == "any":
            del node["type"]
        else:
            node["type"] = _TYPE_ALIASES.get(t, t)
    elif isinstance(t, list):
        node["type"] = [_TYPE_ALIASES.get(x, x) for x in t if x != "any"] or None
        if node["type"] is None:
            del node["type"]
    if node.get("type") == "array" and isinstance(node.get("items"), list):
        node["prefixItems"] = node.pop("items")  # draft-4 tuple form
    for key in _SUBSCHEMA_MAPS:
        for sub in (node.get(key) or {}).values():
            _normalise(sub)
    for key in _SUBSCHEMA_LISTS:
        for sub in node.get(key) or ():
            _normalise(sub)
    for key in _SUBSCHEMA_ONE:
        _normalise(node.get(key))


def _strictable(node: Any) -> bool:
    """Whether strict mode can express `node`: typed everywhere, closed objects, no
    keywords it rejects."""
    if not isinstance(node, dict):
        return True
    if _STRICT_UNSUPPORTED & node.keys():
        return False
    if not ({"type", "anyOf", "$ref", "enum", "const"} & node.keys()):
        return False
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and (
        not node.get("properties") or node.get("additionalProperties") not in (None, False)
    ):
        return False
    if node.get("type") == "array" and not isinstance(node.get("items"), dict):
        return False
    children: list[Any] = []
    for key in ("properties", "$defs", "definitions"):
        children.extend((node.get(key) or {}).values())
    children.extend(node.get("anyOf") or ())
    children.append(node.get("items"))
    return all(_strictable(c) for c in children)


class JsonArgsSchema(StrictSchema):
    """A raw JSON schema in the shape `ToolSet` validates with; values stay plain dicts."""

    __slots__ = ("_given", "strict")

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        given = normalise_schema(parameters)
        try:
            jsonschema.Draft202012Validator.check_schema(given)
        except SchemaError as exc:
            raise UserError(f"tool parameters are not a valid JSON schema: {exc.message}") from exc
        if given.get("type") != "object":
            raise UserError(
                "tool parameters must be an object schema ({'type': 'object', 'properties': "
                f"...}}), not type {given.get('type')!r}"
            )
        self._given = jsonschema.Draft202012Validator(given)
        self.strict = _strictable(given)
        self._markers: dict[int, frozenset[str]] = {}
        self.schema = _split_markers(strict_schema(given), self._markers) if self.strict else given
        self.wrapped = False
        self._validator = jsonschema.Draft202012Validator(self.schema)

    def validate(self, data: Any) -> Any:
        """Check `data` against the schema sent and the schema given; return the dict."""
        problems = self.errors(data)
        if problems:
            raise ValueError("; ".join(problems))
        if self._markers:
            data = self._drop_default_nulls(data, self.schema)
        late = [e.message for e in self._given.iter_errors(data)]
        if late:
            raise ValueError("; ".join(late))
        return data


class SchemaTool(Tool):
    """A tool from a name, a description, a JSON schema of its arguments and a function.

    `fn` (sync or async) is called with the arguments as keywords; a sync one runs in
    a worker thread. Build one with `Tool.from_schema(...)`.
    """

    def __init__(
        self,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        fn: Callable[..., Any],
        *,
        timeout: float | None = 30.0,
    ) -> None:
        if not name:
            raise UserError("a schema tool needs a non-empty name")
        self.original_name = name
        """The name the tool was defined with (may contain dots)."""
        self.name = api_tool_name(name)
        self.description = description
        self.timeout = timeout
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._schema = JsonArgsSchema(parameters)

    @property
    def args_schema(self) -> JsonArgsSchema:
        """The schema the model is sent, and the validator of what it sends."""
        return self._schema

    def definition(self) -> ToolDefinition:
        """What the model is told; `strict` is False where the schema cannot be strict."""
        return ToolDefinition(
            name=self.name,
            description=self.description,
            parameters=self._schema.schema,
            strict=self._schema.strict,
        )

    async def run(self, args: Any, ctx: RunContext[Any]) -> Any:
        """Call `fn` with the validated arguments as keywords."""
        kwargs = dict(args)
        if self._is_async:
            return await self._fn(**kwargs)
        return await anyio.to_thread.run_sync(lambda: self._fn(**kwargs), abandon_on_cancel=True)
