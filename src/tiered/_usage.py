"""Token usage of one model call or many, added up with `+`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("NO_USAGE", "Usage")


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
        # the slots filled directly (the frozen __init__ costs twice as much): the ledger
        # adds up every model call's usage several times over
        total: Usage = _new(Usage)
        _input(total, self.input_tokens + other.input_tokens)
        _cached(total, self.cached_input_tokens + other.cached_input_tokens)
        _output(total, self.output_tokens + other.output_tokens)
        _reasoning(total, self.reasoning_tokens + other.reasoning_tokens)
        _requests(total, self.requests + other.requests)
        return total

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


_new = object.__new__
_input, _cached, _output, _reasoning, _requests = (
    Usage.__dict__[name].__set__
    for name in (
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "requests",
    )
)

NO_USAGE = Usage()
"""The zero `Usage`, shared: it is frozen, so a default need not be a fresh one each time."""
