"""Token usage of one model call or many, added up with `+`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Usage",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens a call consumed; `input_tokens` and `output_tokens` are totals.

    `cached_input_tokens` is the part of `input_tokens` served from the provider's prompt
    cache; `reasoning_tokens` is the part of `output_tokens` spent reasoning.
    """

    input_tokens: int = 0
    """Prompt tokens, cached ones included."""
    cached_input_tokens: int = 0
    """Prompt tokens billed at the cached-input price."""
    output_tokens: int = 0
    """Completion tokens, reasoning ones included."""
    reasoning_tokens: int = 0
    """Completion tokens spent on hidden reasoning."""
    requests: int = 0
    """Model requests made."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            requests=self.requests + other.requests,
        )

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens
