"""Reading the embedded model's replies: a completion as a `ModelResponse`, llama.cpp's
error objects as our typed model errors, and the loops small models fall into (repeated
calls, repeated text)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tiered._errors import BadModelResponse, ContextTooLong, ModelError, ProviderError
from tiered._messages import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolResultMessage,
)
from tiered._usage import Usage
from tiered.models._local_protocol import Protocol, calls_start, parse_reply

__all__ = (
    "LOOP_CHARS",
    "UNLOOP",
    "add_usage",
    "confidence",
    "local_error",
    "looping",
    "read_reply",
    "repeated_calls",
)

LOOP_CHARS: Final = 200
"""How much of one short piece, repeated, makes a runaway: longer than any separator line."""
_LOOP_PERIOD_MAX: Final = 24


UNLOOP: Final = {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 2}
"""llama.cpp's DRY sampler settings (its documented starting point) for a second try."""


def looping(tail: str) -> bool:
    """Whether the last `LOOP_CHARS` characters generated are one piece of at most 24
    characters repeated (eight times or more): the digit, whitespace and list-item loops
    (`"1500000000..."`, `"pumpkin", "pumpkin", ...`) a small model can fall into, which
    would otherwise run on to the output cap."""
    if len(tail) < LOOP_CHARS:
        return False
    tail = tail[-LOOP_CHARS:]
    return any(tail[p:] == tail[:-p] for p in range(1, _LOOP_PERIOD_MAX + 1))


def _call_key(call: ToolCall) -> tuple[str, str]:
    try:
        return call.name, json.dumps(json.loads(call.arguments), sort_keys=True)
    except ValueError:
        return call.name, call.arguments


def repeated_calls(calls: Sequence[ToolCall], request: ModelRequest) -> bool:
    """Whether every one of `calls` was already made, and answered, in the conversation."""
    answered = {m.tool_call_id for m in request.messages if isinstance(m, ToolResultMessage)}
    earlier = {
        _call_key(c)
        for m in request.messages
        if isinstance(m, AssistantMessage)
        for c in m.tool_calls
        if c.id in answered
    }
    return all(_call_key(c) in earlier for c in calls)


def local_error(error: Any, model: str) -> ModelError:
    """llama.cpp's error object as one of ours."""
    if not isinstance(error, dict):
        return ProviderError(f"{model}: local server error: {error}", model=model)
    message = str(error.get("message", error))
    kind = error.get("type")
    code = error.get("code")
    status = code if isinstance(code, int) else None
    if kind == "exceed_context_size_error":
        return ContextTooLong(
            f"{model}: {message}: shorten the request, or give LocalModel a larger n_ctx",
            model=model,
            status=status,
        )
    if status is not None and 400 <= status < 500:
        return ModelError(
            f"{model}: the local server refused the request: {message}", model=model, status=status
        )
    return ProviderError(f"{model}: local server error: {message}", model=model, status=status)


def add_usage(first: object, second: object) -> dict[str, Any]:
    """llama.cpp's usage objects of two completions of one prompt, summed. A stopped
    stream reports only its output (counted as it streamed): its input is the second's,
    the same prompt read again."""
    a = first if isinstance(first, dict) else {}
    b = second if isinstance(second, dict) else {}
    if "prompt_tokens" not in a:
        a = {**a, "prompt_tokens": b.get("prompt_tokens", 0)}

    def cached(u: dict[str, Any]) -> int:
        return int((u.get("prompt_tokens_details") or {}).get("cached_tokens", 0))

    return {
        "prompt_tokens": int(a.get("prompt_tokens", 0)) + int(b.get("prompt_tokens", 0)),
        "completion_tokens": int(a.get("completion_tokens", 0))
        + int(b.get("completion_tokens", 0)),
        "prompt_tokens_details": {"cached_tokens": cached(a) + cached(b)},
    }


def read_reply(raw: Mapping[str, Any], protocol: Protocol, name: str, n_ctx: int) -> ModelResponse:
    """One completion's result as a `ModelResponse`, or the typed error it amounts to
    (its tokens booked on it): a server error, a second runaway, JSON cut off by the
    output cap or the context, or a reply outside the protocol."""
    if "error" in raw:
        raise local_error(raw["error"], name)
    usage_raw = raw.get("usage") or {}
    prompt_tokens = int(usage_raw.get("prompt_tokens", 0))
    completion_tokens = int(usage_raw.get("completion_tokens", 0))
    usage = Usage(
        input_tokens=prompt_tokens,
        cached_input_tokens=int(
            (usage_raw.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        ),
        output_tokens=completion_tokens,
        requests=1,
    )
    finish = raw.get("finish_reason")
    text: str = raw.get("text", "")
    if raw.get("runaway"):
        error = BadModelResponse(
            f"{name} fell into a repeating loop ({text[-40:]!r}), twice: ask for a "
            "shorter answer, or route this work to a larger model",
            model=name,
        )
        error.usage = usage
        raise error
    if protocol.mode == "text":
        message = AssistantMessage(content=text.strip())
    else:
        try:
            if finish == "length":
                if prompt_tokens + completion_tokens >= n_ctx:
                    raise ContextTooLong(
                        f"{name}: prompt ({prompt_tokens} tokens) plus output filled "
                        f"the context of {n_ctx} tokens before the JSON was "
                        "complete: shorten the request, or give LocalModel a larger n_ctx",
                        model=name,
                    )
                raise BadModelResponse(
                    f"{name} hit max_output_tokens ({completion_tokens}) before its JSON "
                    "was complete: raise max_output_tokens or ask for a shorter answer",
                    model=name,
                )
            message = parse_reply(text, protocol, name)
        except ModelError as exc:  # the tokens were generated: book them with it
            exc.usage = usage
            raise
        if message.tool_calls:
            finish = "tool_calls"
    return ModelResponse(
        message=message,
        usage=usage,
        model_name=name,
        finish_reason=finish,
        confidence=confidence(raw, protocol),
    )


def confidence(raw: Mapping[str, Any], protocol: Protocol) -> float | None:
    """The probability of the reply's least sure token that is a decision (None: no
    probabilities came back). Not read: whitespace; the first token of a constrained reply
    (the grammar forces its `{"`, and the model's own probabilities come before the grammar
    masks them: it would rather open with prose); and the list of requests written before
    the calls, which is paraphrase, not the calls themselves."""
    tokens = raw.get("token_logprobs") or ()
    start = calls_start(str(raw.get("text", "")), protocol)
    first = protocol.schema is not None
    low: float | None = None
    for i, (offset, token, logprob) in enumerate(tokens):
        if (first and i == 0) or offset < start or not token.strip():
            continue
        low = logprob if low is None else min(low, logprob)
    return math.exp(low) if low is not None else None
