"""JSON-schema pieces of the embedded model's tool envelope: nested schemas hoisted into
one `$defs`, checked up front, and the compact-output setting.

Split from `_local_protocol`, which decides what a turn asks for; this module only builds
the schema llama.cpp constrains the reply to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from tiered._errors import UserError

__all__ = ("check_schema", "compact", "envelope_object", "hoist")

_REF = re.compile(r"^#/(?:\$defs|definitions)/(.+)$")


def hoist(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` without its `$defs`, moved into `defs` under `prefix` with refs rewritten.

    Needed to nest several schemas in one envelope: their local `#/$defs/...` refs
    must point at the envelope's root.
    """

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and (m := _REF.match(value)):
                    out[key] = f"#/$defs/{prefix}{m.group(1)}"
                else:
                    out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    body = {k: v for k, v in schema.items() if k not in ("$defs", "definitions", "$schema")}
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            defs[f"{prefix}{name}"] = rewrite(sub)
    result: dict[str, Any] = rewrite(body)
    return result


def check_schema(schema: dict[str, Any], what: str) -> None:
    """Reject an invalid schema up front: llama.cpp silently drops a constraint it
    cannot compile and would let the model write anything."""
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise UserError(f"{what} is not a valid JSON schema: {exc.message}") from exc


def envelope_object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def compact(schema: dict[str, Any]) -> dict[str, Any]:
    """Ask llguidance for compact JSON: no free whitespace, fewer tokens to generate."""
    return {**schema, "x-guidance": _COMPACT_JSON}


_COMPACT_JSON = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
