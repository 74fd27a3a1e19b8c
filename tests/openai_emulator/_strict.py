"""What strict mode accepts in a JSON schema, as OpenAI's Structured Outputs guide states it.

Source: platform.openai.com/docs/guides/structured-outputs, "Supported schemas": the
supported types (string, number, boolean, integer, object, array, enum, anyOf), the
supported properties per type (strings: `pattern`, `format` from a fixed list; numbers:
`multipleOf`, `maximum`, `exclusiveMaximum`, `minimum`, `exclusiveMinimum`; arrays:
`minItems`, `maxItems`), "the root level object must be an object and not use anyOf",
"all fields must be required", "additionalProperties: false must always be set in
objects", and the limits (at most 5000 object properties, 10 levels of nesting, 1000
enum values). The same subset applies to strict function tools (function calling guide,
"Strict mode").
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ("strict_schema_problems",)

STRING_FORMATS: Final = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
TYPES: Final = frozenset({"string", "number", "boolean", "integer", "object", "array", "null"})
ANNOTATIONS: Final = frozenset({"title", "description", "default", "examples", "$comment"})
"""Keywords that only describe; accepted on any schema."""
BY_TYPE: Final[dict[str, frozenset[str]]] = {
    "string": frozenset({"pattern", "format"}),
    "number": frozenset(
        {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
    ),
    "integer": frozenset(
        {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
    ),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
STRUCTURAL: Final = frozenset({"type", "anyOf", "enum", "const", "$ref", "$defs", "definitions"})
MAX_DEPTH: Final = 10
MAX_PROPERTIES: Final = 5000
MAX_ENUM: Final = 1000


def strict_schema_problems(schema: object) -> list[str]:
    """Every way `schema` breaks the strict-mode subset; empty when strict mode takes it."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return ["the schema is not an object"]
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("the root schema must be an object, not anyOf")
    counter = [0]
    _walk(schema, "#", 0, problems, counter)
    for name, sub in {**schema.get("$defs", {}), **schema.get("definitions", {})}.items():
        _walk(sub, f"#/$defs/{name}", 1, problems, counter)
    if counter[0] > MAX_PROPERTIES:
        problems.append(f"{counter[0]} object properties: at most {MAX_PROPERTIES}")
    return problems


def _types(node: dict[str, Any]) -> list[str]:
    t = node.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list) and all(isinstance(x, str) for x in t):
        return list(t)
    return []


def _walk(node: object, path: str, depth: int, problems: list[str], counter: list[int]) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: a schema must be an object")
        return
    if depth > MAX_DEPTH:
        problems.append(f"{path}: nested deeper than {MAX_DEPTH} levels")
        return
    types = _types(node)
    if not types and not ({"anyOf", "enum", "const", "$ref"} & node.keys()):
        problems.append(
            f"{path}: schema must have a 'type' key (untyped schemas are not supported)"
        )
    for t in types:
        if t not in TYPES:
            problems.append(f"{path}: type {t!r} is not supported")
    allowed = set(ANNOTATIONS | STRUCTURAL)
    for t in types:
        allowed |= BY_TYPE.get(t, frozenset())
    for key in node:
        if key not in allowed:
            problems.append(f"{path}: '{key}' is not permitted in strict mode")
    fmt = node.get("format")
    if fmt is not None and fmt not in STRING_FORMATS:
        problems.append(f"{path}: format {fmt!r} is not supported in strict mode")
    enum = node.get("enum")
    if isinstance(enum, list) and len(enum) > MAX_ENUM:
        problems.append(f"{path}: enum has {len(enum)} values: at most {MAX_ENUM}")
    if "object" in types:
        props = node.get("properties", {})
        if not isinstance(props, dict):
            problems.append(f"{path}: 'properties' must be an object")
            props = {}
        counter[0] += len(props)
        if node.get("additionalProperties") is not False:
            problems.append(
                f"{path}: 'additionalProperties' is required to be supplied and to be false"
            )
        required = node.get("required", [])
        missing = [k for k in props if k not in required]
        if missing:
            problems.append(f"{path}: 'required' must list every property; missing {missing}")
        for name, sub in props.items():
            _walk(sub, f"{path}/properties/{name}", depth + 1, problems, counter)
    if "array" in types:
        if "items" not in node:
            problems.append(f"{path}: an array schema must have 'items'")
        else:
            _walk(node["items"], f"{path}/items", depth + 1, problems, counter)
    any_of = node.get("anyOf")
    if any_of is not None:
        if not isinstance(any_of, list):
            problems.append(f"{path}: 'anyOf' must be an array")
        else:
            for i, sub in enumerate(any_of):
                _walk(sub, f"{path}/anyOf/{i}", depth + 1, problems, counter)
