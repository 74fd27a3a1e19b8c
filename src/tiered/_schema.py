"""JSON schemas the model accepts in OpenAI strict mode, and validators for what it sends.

Strict mode wants every property required and `additionalProperties: false` on every
object; an optional field becomes nullable instead, and `null` for a field that was not
nullable means "use the default" when we validate.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from pydantic import BaseModel, TypeAdapter

__all__ = ("StrictSchema", "strict_schema", "wrap_in_object")

_DROP = ("default", "discriminator")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a strict-mode copy of `schema` (the input is not modified)."""
    out = copy.deepcopy(schema)
    _strictify(out)
    for sub in out.get("$defs", {}).values():
        _strictify(sub)
    _inline_annotated_refs(out, out.get("$defs", {}))
    return out


def _inline_annotated_refs(node: Any, defs: dict[str, Any]) -> None:
    """Strict mode rejects `$ref` beside other keys: inline the definition there."""
    if isinstance(node, list):
        for item in node:
            _inline_annotated_refs(item, defs)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1 and ref.startswith("#/$defs/"):
        target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
        del node["$ref"]
        for key, value in target.items():
            node.setdefault(key, value)
    for value in node.values():  # definitions too: their properties may be annotated refs
        _inline_annotated_refs(value, defs)


def _is_nullable(schema: dict[str, Any]) -> bool:
    t = schema.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(_is_nullable(s) for s in schema.get("anyOf", ()) if isinstance(s, dict))


_RELAXED = "x-tiered-nullable-default"
"""Marker on an object node naming fields made nullable; stripped before sending."""


def _strictify(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item)
        return
    if not isinstance(node, dict):
        return
    for key in _DROP:
        node.pop(key, None)
    if "oneOf" in node:  # strict mode knows anyOf only; pydantic's unions say oneOf
        node["anyOf"] = node.pop("oneOf")
    # a lone allOf wrapping a $ref is how pydantic adds a description to a reference
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        node.pop("allOf")
        node.update(all_of[0])
    if node.get("type") == "object" or "properties" in node:
        props: dict[str, Any] = node.setdefault("properties", {})
        required = set(node.get("required", ()))
        relaxed = []
        for name, sub in props.items():
            if name not in required and isinstance(sub, dict) and not _is_nullable(sub):
                outer = {k: sub.pop(k) for k in ("description", "title") if k in sub}
                props[name] = {**outer, "anyOf": [sub, {"type": "null"}]}
                relaxed.append(name)
        if relaxed:
            node[_RELAXED] = relaxed
        node["required"] = list(props)
        node["additionalProperties"] = False
        node.setdefault("type", "object")
        for sub in props.values():
            _strictify(sub)
    for key, value in node.items():
        if key not in ("properties", "$defs", _RELAXED) and isinstance(value, dict | list):
            _strictify(value)


def _split_markers(node: Any, markers: dict[int, frozenset[str]]) -> Any:
    """Copy `node` without our markers, recording them by the copy's id."""
    if isinstance(node, list):
        return [_split_markers(x, markers) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _split_markers(v, markers) for k, v in node.items() if k != _RELAXED}
    if _RELAXED in node:
        markers[id(out)] = frozenset(node[_RELAXED])
    return out


def wrap_in_object(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Strict mode needs an object at the root: wrap anything else as `{"result": ...}`."""
    if schema.get("type") == "object" and "properties" in schema:
        return schema, False
    defs = schema.pop("$defs", None)
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": schema},
        "required": ["result"],
        "additionalProperties": False,
    }
    if defs:
        wrapped["$defs"] = defs
    return wrapped, True


class StrictSchema:
    """A type's strict JSON schema plus the two-step check of what the model sent.

    First `jsonschema` against the strict schema (precise paths for the model to fix),
    then pydantic for the typed value.
    """

    __slots__ = ("_adapter", "_markers", "_validator", "schema", "wrapped")

    def __init__(self, tp: Any) -> None:
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
        raw, self.wrapped = wrap_in_object(adapter.json_schema())
        self._markers: dict[int, frozenset[str]] = {}
        self.schema: dict[str, Any] = _split_markers(strict_schema(raw), self._markers)
        self._adapter = adapter
        self._validator = jsonschema.Draft202012Validator(self.schema)

    def errors(self, data: Any) -> list[str]:
        """Every schema violation in `data`, each as 'at PATH: message'.

        For a failed `anyOf`, the branch that came closest (a matching `const`
        discriminator, else the fewest errors) is reported instead of "not valid under
        any of the given schemas".
        """
        found: list[str] = []
        for err in sorted(self._validator.iter_errors(data), key=lambda e: list(e.path)):
            for leaf in _closest(err):
                where = "/".join(str(p) for p in leaf.absolute_path) or "(root)"
                message = leaf.message
                if leaf.validator == "const":
                    message = f"got {leaf.instance!r}, expected {leaf.validator_value!r}"
                found.append(f"at {where}: {message}")
        return found

    def validate(self, data: Any) -> Any:
        """Check `data` and return the typed value; raises `ValueError` listing the problems."""
        problems = self.errors(data)
        if problems:
            raise ValueError("; ".join(problems))
        if self._markers:
            data = self._drop_default_nulls(data, self.schema)
        if self.wrapped:
            data = data["result"]
        return self._adapter.validate_python(data)

    def _drop_default_nulls(self, data: Any, node: dict[str, Any]) -> Any:
        """Remove `null` sent for fields that only became nullable in strict mode."""
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = self.schema["$defs"][ref.removeprefix("#/$defs/")]
        if isinstance(data, dict) and "properties" in node:
            relaxed = self._markers.get(id(node), frozenset())
            props = node["properties"]
            return {
                k: self._drop_default_nulls(v, props[k]) if k in props else v
                for k, v in data.items()
                if not (v is None and k in relaxed)
            }
        if isinstance(data, list) and isinstance(node.get("items"), dict):
            return [self._drop_default_nulls(x, node["items"]) for x in data]
        branches = [
            b for b in node.get("anyOf", ()) if isinstance(b, dict) and b.get("type") != "null"
        ]
        if data is None or not branches:
            return data
        if len(branches) > 1:  # a union: follow the branch the data actually matches
            branches = [b for b in branches if self._validator.evolve(schema=b).is_valid(data)]
        return self._drop_default_nulls(data, branches[0]) if branches else data


def _closest(err: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The innermost errors worth showing for `err`, descending into the nearest anyOf branch."""
    if err.validator != "anyOf" or not err.context:
        return [err]
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in err.context:
        branches.setdefault(int(sub.schema_path[0]), []).append(sub)

    def score(errs: list[jsonschema.ValidationError]) -> tuple[int, int]:
        tag_mismatch = any(e.validator in ("const", "enum") and len(e.path) <= 1 for e in errs)
        return (1 if tag_mismatch else 0, len(errs))

    best = min(branches.values(), key=score)
    if score(best)[0] and len(branches) > 1:
        # no branch's tag matched: name the tag field and the values it may take
        tags = [e for errs in branches.values() for e in errs if e.validator == "const"]
        keys = {tuple(e.relative_path) for e in tags}
        if tags and len(keys) == 1:
            first = tags[0]
            allowed = ", ".join(repr(e.validator_value) for e in tags)
            first.message = f"{first.instance!r} is not one of {allowed}"
            return [first]
        return [err]
    out: list[jsonschema.ValidationError] = []
    for sub in best:
        out.extend(_closest(sub))
    return out


def model_schema(model: type[BaseModel]) -> StrictSchema:
    """The strict schema of a pydantic model (tool arguments, agent input)."""
    return StrictSchema(model)
