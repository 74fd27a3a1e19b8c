"""Names the OpenAI API accepts for tools and structured outputs, and snake_case.

The API documents `^[a-zA-Z0-9_-]{1,64}$` for a function name (chat completions
`FunctionObject.name`, Responses `FunctionTool.name`) and for a structured output's
`json_schema.name`; anything else is a 400. Names are checked where they are defined,
so the mistake shows at import time instead of on the first request.
"""

from __future__ import annotations

import re

from tiered._errors import UserError

__all__ = ("NAME_PATTERN", "check_name", "legal_name", "snake_case")

NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
"""What OpenAI accepts as a tool or output-schema name."""

_NAME = re.compile(NAME_PATTERN)
_ILLEGAL = re.compile(r"[^a-zA-Z0-9_-]")
# a boundary before an upper-case letter that follows a lower-case letter or digit
# (`webSearch`), or that starts a word after an acronym (`HTTPFetch` -> `HTTP|Fetch`)
_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """`HTTPFetch` -> `http_fetch`, `WebSearch` -> `web_search`, `getURL2` -> `get_url2`."""
    return _BOUNDARY.sub("_", name).lower()


def check_name(name: str, what: str) -> str:
    """Return `name` if OpenAI accepts it; else raise `UserError` quoting the pattern."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(
            f"{what} name {name!r} is not accepted by the OpenAI API: it must match "
            f"{NAME_PATTERN} (letters, digits, '_' and '-', 1 to 64 characters)"
        )
    return name


def legal_name(text: str, *, suffix: str = "") -> str:
    """A name matching `NAME_PATTERN` made from `text` (illegal characters become `_`).

    `planner.compose` with suffix `_output` -> `planner_compose_output`; too long a name
    is cut so the suffix still fits.
    """
    base = _ILLEGAL.sub("_", snake_case(text)) or "output"
    return base[: 64 - len(suffix)] + suffix
