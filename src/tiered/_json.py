"""Parsing JSON a model wrote: every way it can go wrong is one `UntrustedJson` error.

`json.loads` alone raises `ValueError` for an integer over 4,300 digits, `RecursionError`
for deep nesting, and accepts `NaN`, `1e999` and lone surrogates that break later
steps. `parse_untrusted` refuses all of them with a message the model can act on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = (
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_PROBLEMS",
    "MAX_VALUES",
    "UntrustedJson",
    "capped",
    "clip",
    "parse_untrusted",
    "parse_untrusted_object",
)

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted: far above any real schema."""
MAX_CHARS = 4_000_000
"""Longest JSON text accepted."""
MAX_VALUES = 20_000
"""Most values (numbers, strings, arrays, objects...) in one text: schema errors for each
of a million wrong items would take minutes to list."""
MAX_PROBLEMS = 20
"""Most problems one error lists (schema violations, plan problems); the rest are counted."""
_PROBLEM_CHARS = 500  # one problem quotes the value it is about: a megabyte string stays short
_MAX_INT_DIGITS = 4_300  # Python's own limit for int(str)
_SURROGATE = re.compile("[\ud800-\udfff]")


class UntrustedJson(ValueError):
    """The text is not JSON we accept; the message says what to send instead.

    `syntax` is true when the text is not JSON at all, false when it is JSON we refuse.
    """

    def __init__(self, message: str, *, syntax: bool = False) -> None:
        self.syntax = syntax
        super().__init__(message)

    def worded(self, what: str, *, plural: bool = False) -> str:
        """`what` (e.g. "Your output") followed by why it was refused, for the model."""
        if self.syntax:
            return f"{what} {'are' if plural else 'is'} not valid JSON ({self})"
        return f"{what} {'were' if plural else 'was'} refused: {self}"


def _int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise UntrustedJson(f"an integer has more than {_MAX_INT_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJson(f"the number {text[:40]} is too large for a float")
    return value


def _constant(name: str) -> Any:
    raise UntrustedJson(f"{name} is not a JSON value: send a number or null")


def _check_string(s: str) -> None:
    if _SURROGATE.search(s):
        raise UntrustedJson("a string contains a lone UTF-16 surrogate escape")


def _check_tree(value: Any, max_depth: int, max_values: int) -> None:
    """Walk the parsed value without recursion: depth, size and strings."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > max_values:
            raise UntrustedJson(f"the JSON holds more than {max_values} values: send less")
        if isinstance(node, str):
            _check_string(node)
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise UntrustedJson(f"arrays and objects are nested more than {max_depth} deep")
        if isinstance(node, dict):
            for key, item in node.items():
                _check_string(key)
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in node)


def parse_untrusted(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_chars: int = MAX_CHARS,
    max_values: int = MAX_VALUES,
) -> Any:
    """Parse `text` as strict JSON; raises `UntrustedJson` (a `ValueError`) and nothing else."""
    if len(text) > max_chars:
        raise UntrustedJson(f"the JSON is {len(text)} characters; at most {max_chars} accepted")
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except UntrustedJson:
        raise
    except json.JSONDecodeError as exc:
        raise UntrustedJson(f"{exc.msg} at character {exc.pos}", syntax=True) from None
    except RecursionError:
        raise UntrustedJson(f"arrays and objects are nested more than {max_depth} deep") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise UntrustedJson(str(exc), syntax=True) from None
    _check_tree(value, max_depth, max_values)
    return value


_KIND: dict[type, str] = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}
_KIND.update({float: "a number", type(None): "null"})


def parse_untrusted_object(text: str) -> dict[str, Any]:
    """`parse_untrusted` for a value that must be an object (blank text: `{}`)."""
    if not text.strip():
        return {}
    value = parse_untrusted(text)
    if not isinstance(value, dict):
        raise UntrustedJson(f"{_KIND.get(type(value), 'a value')} was sent, not an object")
    return value


def clip(text: str, limit: int = 4_000) -> str:
    """`text` cut to `limit` characters: a million-item array's errors stay one screenful."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters of problems)"


def capped(problems: Sequence[str], limit: int = MAX_PROBLEMS) -> list[str]:
    """The first `limit` problems, each cut to a few hundred characters, then "and N more
    problems": hostile output cannot make an error message (or a repair prompt) huge."""
    shown = [clip(p, _PROBLEM_CHARS) for p in problems[:limit]]
    if len(problems) > limit:
        shown.append(f"and {len(problems) - limit} more problems")
    return shown
