"""The OpenAI emulator itself: it accepts what the API accepts and rejects, in OpenAI's
400 shape, what the API rejects (so tests against it fail where production would)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openai_emulator import ApiError, Emulator, Reply, check_chat, check_responses

OBJ = {
    "type": "object",
    "properties": {"q": {"type": "string"}},
    "required": ["q"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "hi"}]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5.4-nano", "messages": USER, **extra}


def responses(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5.4-nano", "input": USER, **extra}


def fn(name: str = "search", parameters: Any = None, strict: bool = True) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": parameters or OBJ, "strict": strict},
    }


def rejected(body: dict[str, Any], api: str = "chat") -> str:
    def check(b: dict[str, Any]) -> None:
        if api == "chat":
            check_chat(b)
        else:
            check_responses(b, set())

    with pytest.raises(ApiError) as info:
        check(body)
    assert info.value.status == 400
    return info.value.message


def test_valid_bodies_pass() -> None:
    check_chat(chat(tools=[fn()], tool_choice="auto", temperature=0.5, max_completion_tokens=99))
    check_chat(chat(response_format={"type": "json_schema", "json_schema": {"name": "Out_1",
               "schema": OBJ, "strict": True}}))  # fmt: skip
    check_responses(
        responses(tools=[{"type": "function", "name": "search", "parameters": OBJ,
                          "strict": True}], reasoning={"effort": "high"}, store=False,
                  include=["reasoning.encrypted_content"], prompt_cache_key="k"),
        set(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (chat(messages=[{"role": "bogus"}]), "Invalid request"),
        (chat(temperature="hot"), "Invalid request"),
        (chat(frobnicate=1), "Unrecognized request argument supplied: frobnicate"),
        (chat(tools=[fn("lookup.order")]), "^[a-zA-Z0-9_-]{1,64}$"),
        (chat(tools=[fn("x" * 65)]), "does not match pattern"),
        (
            chat(response_format={"type": "json_schema",
                 "json_schema": {"name": "planner.compose_output", "schema": OBJ}}),
            "response_format.json_schema.name",
        ),
        (
            chat(tools=[fn()], reasoning_effort="low"),
            "Function tools with reasoning_effort are not supported for gpt-5.4",
        ),
        (chat(reasoning_effort="low", temperature=0.2), "'temperature' is not supported"),
        (chat(reasoning_effort="high", top_p=0.9), "'top_p' is not supported"),
        (
            chat(messages=[*USER, {"role": "tool", "tool_call_id": "x", "content": "r"}]),
            "must be a response to a preceeding message with 'tool_calls'",
        ),
        (chat(stream_options={"include_usage": True}), "only allowed when 'stream'"),
    ],
)  # fmt: skip
def test_chat_rejections(body: dict[str, Any], expected: str) -> None:
    assert expected in rejected(body)


def test_gpt_5_4_tools_without_reasoning_and_other_models_with_it_pass() -> None:
    check_chat(chat(tools=[fn()]))
    check_chat(chat(model="qwen3:8b", tools=[fn()], reasoning_effort="low"))
    check_chat(chat(reasoning_effort="none", temperature=0.2))


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({**OBJ, "properties": {"q": {"type": "string", "maxLength": 5}}}, "'maxLength'"),
        ({**OBJ, "properties": {"q": {"type": "string", "minLength": 1}}}, "'minLength'"),
        ({**OBJ, "properties": {"q": {"type": "array", "items": {"type": "string"},
          "uniqueItems": True}}}, "'uniqueItems'"),
        ({**OBJ, "properties": {"q": {"type": "string", "format": "uri"}}}, "format 'uri'"),
        ({**OBJ, "properties": {"q": {"type": "string", "format": "binary"}}}, "format 'binary'"),
        ({**OBJ, "properties": {"q": {"type": "array", "prefixItems": [{"type": "string"}],
          "items": {"type": "string"}}}}, "'prefixItems'"),
        ({**OBJ, "properties": {"q": {}}}, "must have a 'type'"),
        ({**OBJ, "properties": {"q": {"type": "array"}}}, "must have 'items'"),
        ({k: v for k, v in OBJ.items() if k != "additionalProperties"}, "additionalProperties"),
        ({**OBJ, "required": []}, "'required' must list every property"),
        ({"anyOf": [OBJ]}, "root schema must be an object"),
    ],
)  # fmt: skip
def test_strict_mode_rejects_what_it_does_not_support(schema: Any, expected: str) -> None:
    assert expected in rejected(chat(tools=[fn(parameters=schema)]))
    fmt = {"type": "json_schema", "name": "Out", "schema": schema, "strict": True}
    assert expected in rejected(responses(text={"format": fmt}), "responses")


def test_strict_mode_accepts_its_supported_keywords_and_non_strict_anything() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time", "description": "d"},
            "code": {"type": "string", "pattern": "^[A-Z]+$"},
            "n": {"type": "integer", "minimum": 0, "maximum": 9, "default": 1},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "maxItems": 3},
            "kind": {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},
        },
        "required": ["when", "code", "n", "tags", "kind"],
        "additionalProperties": False,
        "$defs": {"Tag": {"type": "string", "const": "x"}},
    }
    check_chat(chat(tools=[fn(parameters=schema)]))
    check_chat(chat(tools=[fn(parameters={"type": "object", "properties": {"q": {}}},
                              strict=False)]))  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (responses(max_output_tokens=8), "integer below minimum value"),
        (responses(reasoning={"effort": "medium"}, temperature=1.0), "'temperature'"),
        (responses(tools=[{"type": "function", "name": "a b", "parameters": OBJ,
                           "strict": True}]), "tools[0].name"),
        (responses(input=[{"type": "function_call_output", "call_id": "c1", "output": "x"}]),
         "No tool call found for function call output with call_id c1"),
        (responses(input=[{"type": "reasoning", "id": "rs_1", "summary": [],
                           "encrypted_content": "made-up"}]), "could not be verified"),
        (responses(stream_options=None, frobnicate=True), "Unrecognized request argument"),
    ],
)  # fmt: skip
def test_responses_rejections(body: dict[str, Any], expected: str) -> None:
    assert expected in rejected(body, "responses")


def test_errors_come_back_in_openai_shape() -> None:
    emulator = Emulator(script=[Reply(text="never")])
    auth = {"Authorization": "Bearer sk"}
    got = emulator.handle("POST", "/v1/chat/completions", auth, json.dumps(chat(x=1)).encode())
    assert got.status == 400
    error = json.loads(got.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "x"
    assert [e.param for e in emulator.rejected] == ["x"]
    assert emulator.handle("POST", "/v1/chat/completions", {}, b"{}").status == 401
    assert emulator.handle("POST", "/v1/embeddings", auth, b"{}").status == 404
    assert emulator.handle("POST", "/v1/responses", auth, b"not json").status == 400
    assert not emulator.requests  # nothing invalid reached the script
