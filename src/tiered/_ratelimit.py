"""What a provider says about its rate limits, and what a request will weigh against them.

`RateLimitInfo` reads OpenAI's `x-ratelimit-*` response headers; `estimate_input_tokens`
sizes a request before it is sent, for pacing (a typical estimate) and for the budget
(an upper bound, so a reservation is a true worst case).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from tiered._messages import ModelRequest, OutputSchema, ToolDefinition

__all__ = ("DEFAULT_OUTPUT_CAP", "RateLimitInfo", "estimate_input_tokens")

DEFAULT_OUTPUT_CAP: Final = 4_096
"""Output tokens an agent asks for (and reserves) when it sets no `max_output_tokens`."""

_PER_MESSAGE: Final = 4
"""Tokens a chat format spends on each message's role and separators."""
_PER_TOOL: Final = 16
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitInfo:
    """The provider's view of this key's limits when it answered (None where not sent)."""

    limit_requests: int | None = None
    """Requests allowed per window (per minute at OpenAI)."""
    remaining_requests: int | None = None
    """Requests left before a 429."""
    reset_requests: float | None = None
    """Seconds until the request bucket is full again."""
    limit_tokens: int | None = None
    """Tokens allowed per window."""
    remaining_tokens: int | None = None
    """Tokens left before a 429."""
    reset_tokens: float | None = None
    """Seconds until the token bucket is full again."""

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """Parse `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; None if absent."""
        get = headers.get
        values = {
            "limit_requests": _int(get("x-ratelimit-limit-requests")),
            "remaining_requests": _int(get("x-ratelimit-remaining-requests")),
            "reset_requests": _duration(get("x-ratelimit-reset-requests")),
            "limit_tokens": _int(get("x-ratelimit-limit-tokens")),
            "remaining_tokens": _int(get("x-ratelimit-remaining-tokens")),
            "reset_tokens": _duration(get("x-ratelimit-reset-tokens")),
        }
        if all(v is None for v in values.values()):
            return None
        return cls(**values)  # type: ignore[arg-type]


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None


def _duration(text: str | None) -> float | None:
    """Seconds from OpenAI's durations ("1s", "6m0s", "120ms", "1h2m3.5s") or a number."""
    if text is None:
        return None
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        value = sum(float(n) * _UNIT[u] for n, u in parts)
    return value if math.isfinite(value) and value >= 0 else None


def estimate_input_tokens(request: ModelRequest, *, upper_bound: bool = False) -> int:
    """Tokens `request`'s prompt will likely count (four characters a token).

    With `upper_bound` the count is one token per UTF-8 byte: no byte-level tokenizer
    makes more tokens than bytes, so a budget reservation made from it cannot be short.
    """
    size = _PER_MESSAGE * len(request.messages)
    tools, schema = request.tools, request.output_schema
    chars = _definitions_chars(tools, schema) if tools or schema is not None else 0
    for m in request.messages:
        content = m.content  # every message kind has one (None for a tools-only turn)
        if content:
            chars += (
                len(content)
                if not upper_bound or content.isascii()
                else len(content.encode("utf-8", "surrogatepass"))
            )
        if m.role == "assistant":
            for tc in m.tool_calls:
                chars += len(tc.id) + _size(tc.name, upper_bound) + _size(tc.arguments, upper_bound)
    size += _PER_TOOL * (len(tools) + (schema is not None))
    if upper_bound:
        return size + chars + 3
    # Tools and schemas are sent wrapped in JSON; allow for it in the typical estimate.
    return size + -(-chars // 4) + 16 * len(tools) + 3


def _size(text: str, upper_bound: bool) -> int:
    if not upper_bound or text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


_DEFINITIONS: dict[tuple[int, int], tuple[object, object, int]] = {}


def _definitions_chars(tools: tuple[ToolDefinition, ...], schema: OutputSchema | None) -> int:
    """Characters (ASCII JSON, so bytes too) of the tool definitions and output schema.

    Cached by identity, holding the objects so an id cannot be reused while cached: an
    agent sends the same definitions on every turn, and serialising them each time would
    cost more than the rest of the request's framework work."""
    if not tools and schema is None:
        return 0
    key = (id(tools), id(schema))
    hit = _DEFINITIONS.get(key)
    if hit is not None and hit[0] is tools and hit[1] is schema:
        return hit[2]
    chars = 0
    for t in tools:
        chars += len(json.dumps(t.parameters, separators=(",", ":")))
        chars += len(t.name.encode()) + len(t.description.encode())
    if schema is not None:
        chars += len(json.dumps(schema.schema, separators=(",", ":")))
    if len(_DEFINITIONS) >= 512:
        _DEFINITIONS.clear()
    _DEFINITIONS[key] = (tools, schema, chars)
    return chars
