"""Typed reads from a provider's JSON: anything malformed becomes a `BadModelResponse`.

Both API modules (`_chat`, `_responses`) read response bodies and stream events through
these helpers, so a body such as `"content": [null]` or `"prompt_tokens": {}` fails as
one typed error that names the field, never as a `KeyError` or `TypeError` from deep
inside the parser. `fold` reads a whole event stream through either API's reader.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any, Final, NoReturn, Protocol

from tiered._errors import BadModelResponse, OutputTruncated, Refused
from tiered._messages import DeltaCallback, ModelDelta, ModelResponse, TextDelta, ToolCallDelta
from tiered._usage import Usage

__all__ = (
    "Malformed",
    "StreamReader",
    "bad_response",
    "boolean",
    "count",
    "fail",
    "field",
    "fold",
    "is_json",
    "items",
    "load_json",
    "obj",
    "opt_obj",
    "opt_str",
    "refused",
    "replay",
    "string",
    "truncated",
    "usage",
)

MAX_TOKENS: Final = 10**12
"""More tokens than any call can use: a count above it is a malformed body."""
_EMPTY: Final[dict[str, Any]] = {}


class Malformed(Exception):
    """Internal: one field of a body is missing or has the wrong type. `usage` is the
    body's usage when that part was readable, so the call can still be metered."""

    def __init__(self, where: str, why: str, *, usage: Usage | None = None) -> None:
        self.where = where
        self.usage = usage
        super().__init__(f"{where}: {why}")


def fail(where: str, why: str) -> NoReturn:
    raise Malformed(where, why)


def load_json(raw: bytes | str, where: str) -> Any:
    """Parse JSON text; a decode error is `Malformed`."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        fail(where, f"not JSON ({type(exc).__name__})")


def obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(where, f"expected an object, got {type(value).__name__}")
    return value


def opt_obj(value: object, where: str) -> dict[str, Any]:
    """An object, or the empty object for null/absent."""
    return _EMPTY if value is None else obj(value, where)


def field(data: dict[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except KeyError:
        fail(f"{where}.{key}", "missing")


def items(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        fail(where, f"expected an array, got {type(value).__name__}")
    return value


def string(value: object, where: str) -> str:
    if not isinstance(value, str):
        fail(where, f"expected a string, got {type(value).__name__}")
    return value


def opt_str(value: object, where: str) -> str | None:
    return None if value is None else string(value, where)


def boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        fail(where, f"expected a boolean, got {type(value).__name__}")
    return value


def count(value: object, where: str) -> int:
    """A token count: a non-negative int below `MAX_TOKENS`; null or absent is 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        fail(where, f"expected a token count, got {type(value).__name__}")
    if not 0 <= value < MAX_TOKENS:
        fail(where, f"token count {value} is out of range")
    return value


def usage(
    raw: object,
    where: str,
    *,
    input_key: str,
    output_key: str,
    input_details: str,
    output_details: str,
) -> Usage:
    """Usage from a chat (`prompt_tokens`...) or Responses (`input_tokens`...) object."""
    data = opt_obj(raw, where)
    cached = opt_obj(data.get(input_details), f"{where}.{input_details}")
    reasoning = opt_obj(data.get(output_details), f"{where}.{output_details}")
    return Usage(
        input_tokens=count(data.get(input_key), f"{where}.{input_key}"),
        cached_input_tokens=count(cached.get("cached_tokens"), f"{where}.cached_tokens"),
        output_tokens=count(data.get(output_key), f"{where}.{output_key}"),
        reasoning_tokens=count(reasoning.get("reasoning_tokens"), f"{where}.reasoning_tokens"),
        requests=1,
    )


def bad_response(
    exc: Malformed, *, model: str, base_url: str, api: str, status: int | None, usage: Usage | None
) -> BadModelResponse:
    """The typed error for a malformed body, carrying its usage when that was readable."""
    error = BadModelResponse(
        f"model {model!r} at {base_url} answered with a malformed {api} body ({exc}): check "
        f"that the server speaks the OpenAI {api} format, or retry if it was a one-off",
        model=model,
        status=status,
    )
    error.usage = usage
    return error


def truncated(
    model: str, cap: int | None, partial: str | None, usage: Usage | None, reason: str
) -> OutputTruncated:
    """The typed error for an answer cut off at the output-token cap."""
    limit = f"max_output_tokens={cap}" if cap is not None else "the model's output limit"
    error = OutputTruncated(
        f"model {model!r} stopped at {limit} ({reason}) before finishing: raise "
        "max_output_tokens, ask for a shorter answer, or use a tier with a larger limit",
        model=model,
        max_output_tokens=cap,
        partial=partial,
    )
    error.usage = usage
    return error


def refused(model: str, refusal: str, usage: Usage | None) -> Refused:
    """The typed error for a refusal or a content-filter stop."""
    error = Refused(refusal, model=model)
    error.usage = usage
    return error


# --- streams ----------------------------------------------------------------------------


class StreamReader(Protocol):
    """One API's stream events folded into deltas and, at the end, the response."""

    @property
    def usage(self) -> Usage | None:
        """The usage the stream has reported so far."""
        ...

    def feed(self, event: object) -> list[ModelDelta]:
        """The deltas in one event; raises `Malformed` for a bad one."""
        ...

    def finish(self) -> ModelResponse:
        """The whole response once the stream ended; `Malformed` if it ended too soon."""
        ...


async def fold(
    events: AsyncIterable[object], reader: StreamReader, on_delta: DeltaCallback
) -> ModelResponse:
    """Feed every event to `reader`, handing its deltas to `on_delta` as they come, and
    the response at the end. A stream that carried no event at all is `Malformed`: an
    empty answer is never taken for a reply."""
    seen = False
    async for event in events:
        seen = True
        for delta in reader.feed(event):
            on_delta(delta)
    if not seen:
        fail("stream", "it ended without a single event")
    return reader.finish()


def replay(response: ModelResponse, on_delta: DeltaCallback) -> ModelResponse:
    """Hand a whole answer to `on_delta` as deltas (a server that ignored `stream: true`
    sent it in one body), so a streaming caller sees it all the same."""
    message = response.message
    if message.content:
        on_delta(TextDelta(text=message.content))
    for index, call in enumerate(message.tool_calls):
        on_delta(ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments))
    return response


def is_json(content_type: str | None) -> bool:
    """Whether a `Content-Type` says JSON (`application/json`, `...+json`, with params)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
