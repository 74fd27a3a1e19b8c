"""BFCL's AST rule for Python, written here so tests can score without the wheel.

The rule, as BFCL states it: the right number of calls; each expected function called
with every required parameter; no parameter outside the schema or the answer; each
value of the declared type (an int passes for a float) and among the allowed values
(strings compared without spaces or `,./-_*^`, case-insensitively); a parameter left
out only where "" is among its allowed values. Parallel categories match calls to
answers in any order. `bench.bfcl.checker` runs BFCL's own code; `agreement` there
shows the two agree.
"""

from __future__ import annotations

import re
from typing import Any, cast

__all__ = ("score",)

_PY: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool, "array": list,
    "tuple": list, "dict": dict, "any": str,
}  # fmt: skip
_PUNCT = re.compile(r"[ ,./\-_*^]")


def _norm(text: str) -> str:
    return _PUNCT.sub("", text).lower().replace("'", '"')


def _norm_value(value: Any) -> Any:
    if isinstance(value, str):
        return _norm(value)
    if isinstance(value, list):
        return [_norm_value(v) for v in value]
    return value


def _dict_ok(value: dict[str, Any], allowed: list[Any]) -> bool:
    for option in allowed:
        if option == "" or not isinstance(option, dict):
            continue
        fits = all(
            k in option and _norm_value(v) in [_norm_value(a) for a in option[k]]
            for k, v in value.items()
        )
        if fits and all(k in value or "" in vals for k, vals in option.items()):
            return True
    return False


def _list_of_dicts_ok(value: list[Any], allowed: list[Any]) -> bool:
    for option in allowed:
        if (
            isinstance(option, list)
            and len(option) == len(value)
            and all(
                isinstance(v, dict) and _dict_ok(v, [o]) for v, o in zip(value, option, strict=True)
            )
        ):
            return True
    return False


def _type_ok(value: Any, declared: str, items: str | None, allowed: list[Any]) -> tuple[bool, bool]:
    """(type acceptable, value is a 'variable' named by string)."""
    want = _PY.get(declared, str)
    answer_type = next((type(a) for a in allowed if a != ""), None)
    if type(value) is want:
        if items is None or want is not list:
            return True, answer_type is not None and answer_type is not want
        item_type = _PY.get(items, str)  # one level deep: each item of the declared type,
        for option in allowed:  # or of the type the allowed list's items have
            if not isinstance(option, list):
                return True, False
            named = next((type(a) for a in option if a != ""), None)
            seq: list[Any] = cast(list[Any], value)
            if all(type(v) is item_type or type(v) is named for v in seq):
                return True, False
        return False, False
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, False


def _call_ok(doc: dict[str, Any], call: dict[str, Any], answer: dict[str, Any]) -> str:
    """'' when `call` satisfies `answer` for function `doc`, else the error type."""
    name = doc["name"]
    if name not in call:
        return "wrong_func_name"
    args, allowed = call[name], next(iter(answer.values()))
    props = doc["parameters"].get("properties", {})
    if any(p not in args for p in doc["parameters"].get("required", ())):
        return "missing_required"
    for param, value in args.items():
        if param not in props or param not in allowed:
            return "unexpected_param"
        declared = props[param].get("type", "any")
        nested = props[param].get("items") if declared in ("array", "tuple") else None
        items = nested.get("type") if isinstance(nested, dict) else None
        if declared == "float" and type(value) is int:
            value = float(value)
        ok, variable = _type_ok(value, declared, items, allowed[param])
        if not ok:
            return "type_error"
        if variable:
            if value not in allowed[param]:
                return "value_error"
            continue
        if isinstance(value, dict):
            good = _dict_ok(value, allowed[param])
        elif isinstance(value, list) and items == "dict":
            good = _list_of_dicts_ok(value, allowed[param])
        elif isinstance(value, str | list):
            good = _norm_value(value) in [_norm_value(a) for a in allowed[param]
                                          if type(a) is type(value)]  # fmt: skip
        else:
            good = value in allowed[param]
        if not good:
            return "value_error"
    if any(p not in args and "" not in vals for p, vals in allowed.items()):
        return "missing_optional"
    return ""


def _doc(functions: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((f for f in functions if f["name"] == name), None)


def score(
    category: str,
    functions: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    answers: list[dict[str, Any]],
) -> tuple[bool, str]:
    """(valid, error type) for `calls` ([{name: {arg: value}}]) on one BFCL case."""
    if category == "irrelevance":
        return (True, "") if not calls else (False, "irrelevance")
    if len(calls) != len(answers):
        return False, "wrong_count"
    if "parallel" not in category:
        doc = (
            functions[0] if "multiple" not in category else _doc(functions, next(iter(answers[0])))
        )
        if doc is None:
            return False, "wrong_func_name"
        error = _call_ok(doc, calls[0], answers[0])
        return not error, error
    unmatched = list(range(len(calls)))
    for answer in answers:
        doc = _doc(functions, next(iter(answer)))
        hit = next((i for i in unmatched if doc and not _call_ok(doc, calls[i], answer)), None)
        if hit is None:
            return False, "cannot_find_match"
        unmatched.remove(hit)
    return True, ""
