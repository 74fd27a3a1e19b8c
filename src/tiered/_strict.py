"""What OpenAI strict mode accepts, and what we do with the rest of pydantic's schema.

The supported keywords (OpenAI structured-outputs guide, "Supported schemas"): for
strings `pattern` and the formats in `SUPPORTED_FORMATS`; for numbers `minimum`,
`maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`; for arrays
`minItems`, `maxItems`. The other constraints pydantic emits move into the field's
description and stay in the schema we validate with; the types strict mode cannot
express raise a `UserError` naming the field and the fix.
"""

from __future__ import annotations

import json
from typing import Any

from tiered._errors import UserError

__all__ = (
    "MOVED",
    "MOVED_KEYWORDS",
    "SUPPORTED_FORMATS",
    "add_description",
    "check_supported",
    "constraint_message",
    "move_constraints",
)

SUPPORTED_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
"""String formats strict mode accepts."""

MOVED = "x-tiered-moved"
"""Marker on a node: the constraints moved into its description (keyword -> value)."""

MOVED_KEYWORDS = ("minLength", "maxLength", "uniqueItems", "minProperties", "maxProperties")
"""Constraints strict mode rejects that we describe and check ourselves (and `format`)."""

_UNSUPPORTED = (
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "not",
    "if",
    "dependentRequired",
    "dependentSchemas",
)
_TYPED = ("type", "anyOf", "oneOf", "allOf", "$ref", "enum", "const")
_OPT_OUT = {
    "tool": "or set `@tool(strict=False)` / `strict = False` on the Tool class",
    "agent": "or pass `Agent(strict_output=False)`",
}
_OPT_OUT_ANY = (
    "or opt out of strict mode (`@tool(strict=False)`, `strict = False` on a Tool class, "
    "`Agent(strict_output=False)`)"
)


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _describe(keyword: str, value: Any) -> str:
    """A constraint in words, as the model reads it in a description."""
    match keyword:
        case "minLength":
            return f"at least {_plural(value, 'character')}"
        case "maxLength":
            return f"at most {_plural(value, 'character')}"
        case "uniqueItems":
            return "items must be unique"
        case "minProperties":
            return f"at least {_plural(value, 'key')}"
        case "maxProperties":
            return f"at most {_plural(value, 'key')}"
        case "format":
            return f"format: {value}"
    return f"{keyword}: {json.dumps(value)}"


def constraint_message(keyword: str, value: Any, instance: Any) -> str:
    """The repair-prompt line for a moved constraint `instance` violates."""
    if keyword == "uniqueItems":
        return "items must be unique, and some repeat"
    size = len(instance) if isinstance(instance, str | list | dict) else None
    got = f" (got {size})" if size is not None else ""
    return f"must have {_describe(keyword, value)}{got}"


def add_description(node: dict[str, Any], text: str) -> None:
    """Append `text` to the node's description (a sentence after a full stop)."""
    old = str(node.get("description") or "").rstrip()
    if old and not text.startswith("(") and old[-1] not in ".!?:":
        old += "."
    node["description"] = f"{old} {text}" if old else text


def move_constraints(node: dict[str, Any]) -> None:
    """Move the constraints strict mode rejects into the description and the `MOVED` marker."""
    moved = {k: node.pop(k) for k in MOVED_KEYWORDS if k in node}
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt not in SUPPORTED_FORMATS:
        moved["format"] = node.pop("format")
    shown = [_describe(k, v) for k, v in moved.items() if not (k == "uniqueItems" and not v)]
    if shown:
        add_description(node, f"({'; '.join(shown)})")
    if moved:
        node[MOVED] = moved


def _unsupported(path: str, owner: str, reason: str, fix: str) -> UserError:
    where = f"field {path!r}" if path else "the value"
    opt_out = _OPT_OUT.get(owner.partition(" ")[0], _OPT_OUT_ANY)
    return UserError(
        f"{owner}: {where} is {reason}, which OpenAI strict mode cannot express: {fix}; "
        f"{opt_out} to send a non-strict schema (validated here all the same)"
    )


def check_supported(node: dict[str, Any], path: str, owner: str) -> None:
    """Raise `UserError` if strict mode cannot express `node` (the field at `path`)."""
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        raise _unsupported(
            path,
            owner,
            "a dict with free-form keys (dict[str, X])",
            "use a list of models instead, e.g. list[Entry] where Entry has `key: str` "
            "and `value: X`",
        )
    if extra is True and "properties" in node:
        reason = "a model that accepts extra keys (extra='allow')"
        raise _unsupported(path, owner, reason, "declare every field and drop extra='allow'")
    if extra is True or (node.get("type") == "object" and "properties" not in node):
        reason = "an object with no declared fields (dict or dict[str, Any])"
        raise _unsupported(path, owner, reason, "use a pydantic model with the fields you expect")
    if "prefixItems" in node:
        reason = "a fixed-length tuple (prefixItems)"
        fix = "use a pydantic model with one field per position, or list[X]"
        raise _unsupported(path, owner, reason, fix)
    if node.get("type") == "array" and not node.get("items"):
        reason = "a list of anything (bare list or list[Any])"
        raise _unsupported(path, owner, reason, "say what it holds, e.g. list[str]")
    if not any(key in node for key in _TYPED):
        reason = "of any type (Any or object)"
        fix = "give it a concrete type, e.g. str or a model (an unannotated parameter is Any)"
        raise _unsupported(path, owner, reason, fix)
    for key in _UNSUPPORTED:
        if key in node:
            fix = "drop the constraint and check it in `validate_output` or the tool instead"
            raise _unsupported(path, owner, f"constrained with {key!r}", fix)
