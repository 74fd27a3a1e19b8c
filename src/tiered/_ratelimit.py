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

from tiered._messages import ModelRequest

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
    size = 0
    parts: list[str] = []
    for m in request.messages:
        content = getattr(m, "content", None)
        if content:
            parts.append(content)
        for tc in getattr(m, "tool_calls", ()):
            parts.append(tc.id)
            parts.append(tc.name)
            parts.append(tc.arguments)
        size += _PER_MESSAGE
    for t in request.tools:
        parts.append(t.name)
        parts.append(t.description)
        parts.append(json.dumps(t.parameters, separators=(",", ":")))
        size += _PER_TOOL
    if request.output_schema is not None:
        parts.append(json.dumps(request.output_schema.schema, separators=(",", ":")))
        size += _PER_TOOL
    text = "".join(parts)
    if upper_bound:
        return size + len(text.encode("utf-8", "surrogatepass")) + 3
    # Tools and schemas are sent wrapped in JSON; allow for it in the typical estimate.
    return size + -(-len(text) // 4) + 16 * len(request.tools) + 3
