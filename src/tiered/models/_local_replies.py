"""Reading the embedded model's replies: llama.cpp's error objects as our typed model
errors, and the repeated-call loop small models fall into."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tiered._errors import ContextTooLong, ModelError, ProviderError
from tiered._messages import AssistantMessage, ModelRequest, ToolCall, ToolResultMessage

__all__ = ("local_error", "repeated_calls")


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
