"""Request checks: the openai SDK's own request types, then the rules a schema cannot carry.

Every failure is an `ApiError` that renders as OpenAI's 400 body
(`{"error": {"message", "type", "param", "code"}}`, API reference "Error codes").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any, Final, get_type_hints

from openai.types.chat import completion_create_params as chat_params
from openai.types.responses import response_create_params as responses_params
from pydantic import TypeAdapter, ValidationError

from openai_emulator._strict import strict_schema_problems

__all__ = ("ApiError", "check_chat", "check_responses")

NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Function and response-format names. Chat API reference, `tools[].function.name` and
`response_format.json_schema.name`: "Must be a-z, A-Z, 0-9, or contain underscores and
dashes, with a maximum length of 64." The Responses reference states the same for
`tools[].name` and `text.format.name`."""
SAMPLING: Final = ("temperature", "top_p")


class ApiError(Exception):
    """An error the emulator answers with, in OpenAI's shape."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        status: int = 400,
    ) -> None:
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.status = status
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@cache
def _adapter(kind: str) -> TypeAdapter[Any]:
    if kind == "chat":
        return TypeAdapter(chat_params.CompletionCreateParams)
    return TypeAdapter(responses_params.ResponseCreateParams)


@cache
def _known(kind: str) -> frozenset[str]:
    typed = (
        (
            chat_params.CompletionCreateParamsNonStreaming,
            chat_params.CompletionCreateParamsStreaming,
        )
        if kind == "chat"
        else (
            responses_params.ResponseCreateParamsNonStreaming,
            responses_params.ResponseCreateParamsStreaming,
        )
    )
    return frozenset(k for t in typed for k in get_type_hints(t))


def _drain(value: Any) -> None:
    """Consume the lazy iterators pydantic builds for `Iterable[...]` fields, so their
    items are validated too (the SDK types `messages` and `tools` as Iterables)."""
    if isinstance(value, dict):
        for v in value.values():
            _drain(v)
    elif isinstance(value, list | tuple | Iterator):
        for v in value:
            _drain(v)


def _sdk_types(kind: str, body: dict[str, Any]) -> None:
    """The body against the SDK's TypedDicts; unknown top-level keys are rejected as the
    API does ("Unrecognized request argument supplied: ...")."""
    for key in body:
        if key not in _known(kind):
            raise ApiError(f"Unrecognized request argument supplied: {key}", param=key)
    try:
        _drain(_adapter(kind).validate_python(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ApiError(
            f"Invalid request ({exc.error_count()} problems), first at {loc}: {first['msg']}",
            param=str(first["loc"][0]) if first["loc"] else None,
            code="invalid_type",
        ) from None


def _name(name: object, param: str) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise ApiError(
            f"Invalid '{param}': string does not match pattern. Expected a string that "
            f"matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$', got {name!r}.",
            param=param,
            code="invalid_value",
        )


def _strict(schema: object, strict: object, param: str, label: str) -> None:
    if strict is not True:
        return
    problems = strict_schema_problems(schema)
    if problems:
        raise ApiError(
            f"Invalid schema for {label}: In context=(), {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            param=param,
            code="invalid_function_parameters" if "function" in label else "invalid_json_schema",
        )


def _sampling(body: dict[str, Any], effort: object) -> None:
    """Reasoning models take sampling parameters only with reasoning effort "none" (GPT-5
    guide, "Parameter compatibility": temperature, top_p and logprobs are supported only
    with reasoning effort none)."""
    if effort is None or effort == "none":
        return
    for key in SAMPLING:
        if body.get(key) is not None:
            raise ApiError(
                f"Unsupported parameter: '{key}' is not supported with this model "
                f"when reasoning effort is {effort!r}.",
                param=key,
                code="unsupported_parameter",
            )


def check_chat(body: dict[str, Any]) -> None:
    """Raise `ApiError` for a chat completions body OpenAI would reject."""
    _sdk_types("chat", body)
    model = str(body.get("model", ""))
    tools = body.get("tools") or []
    for i, tool in enumerate(tools):
        fn = tool.get("function", {})
        _name(fn.get("name"), f"tools[{i}].function.name")
        _strict(
            fn.get("parameters"),
            fn.get("strict"),
            f"tools[{i}].function.parameters",
            f"function '{fn.get('name')}'",
        )
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema", {})
        _name(spec.get("name"), "response_format.json_schema.name")
        _strict(
            spec.get("schema"),
            spec.get("strict"),
            "response_format",
            f"response_format '{spec.get('name')}'",
        )
    effort = body.get("reasoning_effort")
    # Observed API behaviour (issue 11): 400 "Function tools with reasoning_effort are not
    # supported for gpt-5.4 in /v1/chat/completions"; the Responses API allows both.
    if model.startswith("gpt-5.4") and tools and effort is not None:
        raise ApiError(
            f"Function tools with reasoning_effort are not supported for {model} in "
            "/v1/chat/completions. Please use /v1/responses instead.",
            param="reasoning_effort",
            code="unsupported_parameter",
        )
    _sampling(body, effort)
    # Chat guide, function calling: each tool message answers a tool call of the
    # assistant message before it.
    open_calls: set[str] = set()
    for i, msg in enumerate(body.get("messages", [])):
        if msg.get("role") == "assistant":
            open_calls = {tc.get("id") for tc in msg.get("tool_calls") or []}
        elif msg.get("role") == "tool" and msg.get("tool_call_id") not in open_calls:
            raise ApiError(
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'.",
                param=f"messages.[{i}].role",
            )
    if not body.get("stream") and body.get("stream_options") is not None:
        raise ApiError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )


def check_responses(body: dict[str, Any], issued: set[str]) -> None:
    """Raise `ApiError` for a Responses body OpenAI would reject; `issued` holds the
    encrypted reasoning this emulator handed out (anything else cannot be decrypted)."""
    _sdk_types("responses", body)
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") == "function":
            _name(tool.get("name"), f"tools[{i}].name")
            _strict(
                tool.get("parameters"),
                tool.get("strict"),
                f"tools[{i}].parameters",
                f"function '{tool.get('name')}'",
            )
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        _name(fmt.get("name"), "text.format.name")
        _strict(
            fmt.get("schema"),
            fmt.get("strict"),
            "text.format.schema",
            f"text.format '{fmt.get('name')}'",
        )
    _sampling(body, (body.get("reasoning") or {}).get("effort"))
    cap = body.get("max_output_tokens")
    if cap is not None and cap < 16:  # OpenAPI: CreateResponse.max_output_tokens minimum 16
        raise ApiError(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value "
            f">= 16, but got {cap} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    items = body.get("input")
    calls: set[str] = set()
    for i, item in enumerate(items if isinstance(items, list) else []):
        kind = item.get("type")
        if kind == "reasoning":
            # Reasoning guide: with store=false, encrypted reasoning from an earlier
            # response is passed back as-is; content the API did not issue is rejected.
            content = item.get("encrypted_content")
            if content is not None and content not in issued:
                raise ApiError(
                    f"The encrypted content for item {item.get('id')} could not be verified.",
                    param=f"input[{i}].encrypted_content",
                    code="invalid_encrypted_content",
                )
        elif kind == "function_call":
            calls.add(item.get("call_id"))
        elif kind == "function_call_output" and item.get("call_id") not in calls:
            raise ApiError(
                f"No tool call found for function call output with call_id {item.get('call_id')}.",
                param="input",
            )
