"""JSON schemas the model accepts in OpenAI strict mode, and validators for what it sends.

Strict mode wants every property required and `additionalProperties: false` on every
object; an optional field becomes nullable instead, and `null` for a field that was not
nullable means "use the default" when we validate (the description says which default:
strict mode has no `default` keyword, and OpenAI's docs model an optional field as a
union with null).

Strict mode supports only some keywords (see `tiered._strict`): the others pydantic
emits (`minLength`, `maxLength`, `uniqueItems`, a `format` such as `uri`...) move into
the field's description, e.g. "(at most 20 characters)", and are still checked when
the model's answer is validated, so the repair prompt names the violated constraint.

A type strict mode cannot express at all (`dict[str, X]`, a model with
`extra='allow'`, `Any`, a bare `list` or `dict`, a fixed-length `tuple`) raises a
`UserError` naming the field and the fix. `strict=False` (on a `Tool`, `@tool`, or
`Agent(strict_output=False)`) sends pydantic's schema unchanged and non-strict instead:
the API then does not hold the model to it, and our validation still does.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
from pydantic import TypeAdapter, ValidationError

from tiered._json import capped
from tiered._strict import (
    MOVED,
    MOVED_KEYWORDS,
    add_description,
    check_supported,
    constraint_message,
    move_constraints,
)

__all__ = ("StrictSchema", "strict_schema", "wrap_in_object")

_DROP = ("default", "discriminator")
_RELAXED = "x-tiered-nullable-default"
"""Marker on an object node naming fields made nullable; stripped before sending."""
_MARKERS = (MOVED, _RELAXED)


def strict_schema(schema: dict[str, Any], *, owner: str = "schema") -> dict[str, Any]:
    """Return a strict-mode copy of `schema` (the input is not modified).

    Raises `UserError` naming the field for a type strict mode cannot express; `owner`
    says whose schema it is in that message (e.g. "tool 'search'").
    """
    out = copy.deepcopy(schema)
    _strictify(out, "", owner)
    for key, sub in out.get("$defs", {}).items():
        _strictify(sub, key, owner)
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


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _strictify(node: Any, path: str, owner: str) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item, path, owner)
        return
    if not isinstance(node, dict):
        return
    check_supported(node, path, owner)
    for key in _DROP:
        node.pop(key, None)
    if "oneOf" in node:  # strict mode knows anyOf only; pydantic's unions say oneOf
        node["anyOf"] = node.pop("oneOf")
    # a lone allOf wrapping a $ref is how pydantic adds a description to a reference
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        node.pop("allOf")
        node.update(all_of[0])
    move_constraints(node)
    if node.get("type") == "object" or "properties" in node:
        props: dict[str, Any] = node.setdefault("properties", {})
        required = set(node.get("required", ()))
        relaxed = []
        for name, sub in props.items():
            if not isinstance(sub, dict):
                continue
            has_default = "default" in sub
            default = sub.get("default")
            if name not in required and not _is_nullable(sub):
                outer = {k: sub.pop(k) for k in ("description", "title") if k in sub}
                props[name] = {**outer, "anyOf": [sub, {"type": "null"}]}
                shown = f" ({json.dumps(default)})" if has_default else ""
                add_description(props[name], f"Send null for the default{shown}.")
                relaxed.append(name)
            elif has_default and default is not None:
                add_description(sub, f"(default: {json.dumps(default)})")
        if relaxed:
            node[_RELAXED] = relaxed
        node["required"] = list(props)
        node["additionalProperties"] = False
        node.setdefault("type", "object")
        for name, sub in props.items():
            _strictify(sub, _join(path, name), owner)
    for key, value in node.items():
        if key not in ("properties", "$defs", *_MARKERS) and isinstance(value, dict | list):
            _strictify(value, f"{path}[]" if key == "items" else path, owner)


def _split_markers(node: Any, markers: dict[int, frozenset[str]]) -> Any:
    """Copy `node` without our markers, recording relaxed fields by the copy's id."""
    if isinstance(node, list):
        return [_split_markers(x, markers) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _split_markers(v, markers) for k, v in node.items() if k not in _MARKERS}
    if _RELAXED in node:
        markers[id(out)] = frozenset(node[_RELAXED])
    return out


def _checked(node: Any) -> Any:
    """Copy `node` with the moved constraints back in place: the schema we validate with."""
    if isinstance(node, list):
        return [_checked(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _checked(v) for k, v in node.items() if k not in _MARKERS}
    out.update(node.get(MOVED, {}))
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

    First `jsonschema` against the schema with the moved constraints put back (precise
    paths for the model to fix), then pydantic for the typed value. `strict=False`
    keeps pydantic's own schema and sends it non-strict.
    """

    __slots__ = ("_adapter", "_markers", "_validator", "schema", "strict", "wrapped")

    def __init__(self, tp: Any, *, strict: bool = True, owner: str | None = None) -> None:
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
        raw, self.wrapped = wrap_in_object(adapter.json_schema())
        self.strict = strict
        self._markers: dict[int, frozenset[str]] = {}
        if strict:
            owner = owner or f"type {getattr(tp, '__name__', repr(tp))}"
            marked = strict_schema(raw, owner=owner)
            self.schema: dict[str, Any] = _split_markers(marked, self._markers)
            checked = _checked(marked)
        else:
            self.schema = checked = raw
        self._adapter = adapter
        self._validator = jsonschema.Draft202012Validator(checked)

    def errors(self, data: Any) -> list[str]:
        """Every schema violation in `data`, each as 'at PATH: message' (the first
        `MAX_PROBLEMS`, then how many more).

        For a failed `anyOf`, the branch that came closest (a matching `const`
        discriminator, else the fewest errors) is reported instead of "not valid under
        any of the given schemas".
        """
        found: list[str] = []
        for err in sorted(self._validator.iter_errors(data), key=lambda e: list(e.path)):
            for leaf in _closest(err):
                where = "/".join(str(p) for p in leaf.absolute_path) or "(root)"
                found.append(f"at {where}: {_message(leaf)}")
        return capped(found)

    def validate(self, data: Any) -> Any:
        """Check `data` and return the typed value; raises `ValueError` listing the problems."""
        problems = self.errors(data)
        if problems:
            raise ValueError("; ".join(problems))
        if self._markers:
            data = self._drop_default_nulls(data, self.schema)
        if self.wrapped:
            data = data["result"]
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            raise ValueError(_pydantic_problems(exc)) from exc

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


def _message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message, in the words of the description for a moved constraint."""
    if err.validator == "const":
        return f"got {err.instance!r}, expected {err.validator_value!r}"
    if err.validator in MOVED_KEYWORDS:
        return constraint_message(str(err.validator), err.validator_value, err.instance)
    return err.message


def _pydantic_problems(exc: ValidationError) -> str:
    """Pydantic's errors as 'at PATH: message', without its documentation links."""
    parts = []
    for e in exc.errors(include_url=False):
        where = "/".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"at {where}: {e['msg']}")
    return "; ".join(capped(parts))


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
