"""A JSON schema as a short sketch for a small model's prompt.

Constrained decoding already enforces the schema, so the prompt only has to say what
the fields mean: `{"total_cents": integer (Total refund owed, in cents.)}` instead of
the schema's JSON, which repeats titles, `additionalProperties` and inlined `$defs`
(the planner's plan schema shrinks to about a third, and every token of a prompt costs
reading time on a CPU).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ("sketch",)

_MAX_DEPTH = 12


def sketch(schema: Mapping[str, Any]) -> str:
    """`schema` as compact pseudo-JSON: field names, types, enums and descriptions."""
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _node(schema, defs, (), set())


def _node(
    node: Any, defs: Mapping[str, Any], seen: tuple[str, ...], said: set[tuple[str, str]]
) -> str:
    """One schema node; `said` holds (field, description) pairs already written once."""
    if not isinstance(node, Mapping):
        return "any"
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen or len(seen) >= _MAX_DEPTH or name not in defs:
            return name  # recursive (or unknown) reference: name it
        return _node(defs[name], defs, (*seen, name), said)
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            return " | ".join(_node(s, defs, seen, said) for s in node[key])
    kind = node.get("type")
    if isinstance(kind, list):
        return " | ".join(_node({**node, "type": k}, defs, seen, said) for k in kind)
    if kind == "array" or "items" in node:
        return f"[{_node(node.get('items', {}), defs, seen, said)}, ...]"
    props = node.get("properties")
    if kind == "object" or isinstance(props, Mapping):
        if not props:
            return "object"
        required = set(node.get("required") or ())
        fields = []
        for name, sub in props.items():
            text = f"{json.dumps(name)}: {_node(sub, defs, seen, said)}"
            if name not in required:
                text += " (optional)"
            desc = sub.get("description") if isinstance(sub, Mapping) else None
            if desc and (name, str(desc)) not in said:  # a repeated field says it once
                said.add((name, str(desc)))
                text += f" ({' '.join(str(desc).split())})"
            fields.append(text)
        return "{" + ", ".join(fields) + "}"
    return str(kind) if kind else "any"
