"""Answers as OpenAI sends them: chat completions and Responses, whole or as SSE events.

Shapes follow the API reference ("The chat completion object", "The chat completion chunk
object", "The response object", "Streaming events"): usage with cached and reasoning
token details, `stream_options.include_usage`'s final chunk with empty `choices`, and the
Responses `response.completed` / `response.incomplete` events that carry the whole
response. Truncation is `finish_reason="length"` on chat and `status="incomplete"` with
`incomplete_details.reason="max_output_tokens"` on Responses; a content-filter stop is
`finish_reason="content_filter"` / `reason="content_filter"`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = (
    "Call",
    "Reply",
    "Tokens",
    "chat_body",
    "chat_chunks",
    "response_body",
    "response_events",
)

CREATED = 1_774_000_000


@dataclass(frozen=True, slots=True)
class Call:
    """A function call in a scripted reply."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True, slots=True)
class Tokens:
    """Usage to report; `cached` is part of `input`, `reasoning` part of `output`."""

    input: int
    output: int
    cached: int = 0
    reasoning: int = 0


@dataclass(frozen=True, slots=True)
class Reply:
    """What the emulated model answers with, rendered for whichever API was called."""

    text: str | None = None
    calls: Sequence[Call] = ()
    refusal: str | None = None
    finish: Literal["stop", "length", "content_filter"] = "stop"
    usage: Tokens | None = None
    """None: estimated from the request (and the emulated prompt cache)."""
    reasoning: str | None = None
    """A reasoning summary; on Responses, a reasoning item is returned with it."""


def pieces(text: str, n: int = 3) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- chat completions -------------------------------------------------------------------


def chat_usage(t: Tokens) -> dict[str, Any]:
    return {
        "prompt_tokens": t.input,
        "completion_tokens": t.output,
        "total_tokens": t.input + t.output,
        "prompt_tokens_details": {"cached_tokens": t.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": t.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(reply: Reply) -> str:
    if reply.finish != "stop":
        return reply.finish
    return "tool_calls" if reply.calls else "stop"


def chat_body(reply: Reply, model: str, usage: Tokens, call_ids: list[str]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": reply.refusal,
        "annotations": [],
    }
    if reply.calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.text()}}
            for c, cid in zip(reply.calls, call_ids, strict=True)
        ]
    return {
        "id": "chatcmpl-emu",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}
        ],
        "usage": chat_usage(usage),
        "service_tier": "default",
        "system_fingerprint": None,
    }


def chat_chunks(
    reply: Reply, model: str, usage: Tokens | None, call_ids: list[str]
) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` events; the usage chunk only with include_usage."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-emu",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None,
        }

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": p}) for p in pieces(reply.text or "")]
    out += [chunk({"refusal": p}) for p in pieces(reply.refusal or "")]
    for index, (c, cid) in enumerate(zip(reply.calls, call_ids, strict=True)):
        head = {"index": index, "id": cid, "type": "function"}
        out.append(chunk({"tool_calls": [{**head, "function": {"name": c.name, "arguments": ""}}]}))
        out += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
            for p in pieces(c.text(), 2)
        ]
    out.append(chunk({}, _finish(reply)))
    if usage is not None:
        out.append({**chunk({}), "choices": [], "usage": chat_usage(usage)})
    return out


# --- Responses --------------------------------------------------------------------------


def response_body(
    reply: Reply,
    model: str,
    usage: Tokens,
    call_ids: list[str],
    reasoning: tuple[str, str] | None,
) -> dict[str, Any]:
    """The response object; `reasoning` is (item id, encrypted content) when issued."""
    output: list[dict[str, Any]] = []
    if reasoning is not None:
        rid, encrypted = reasoning
        summary = [{"type": "summary_text", "text": reply.reasoning}] if reply.reasoning else []
        output.append(
            {"type": "reasoning", "id": rid, "summary": summary, "encrypted_content": encrypted}
        )
    content: list[dict[str, Any]] = []
    if reply.text is not None:
        content.append(
            {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
        )
    if reply.refusal is not None:
        content.append({"type": "refusal", "refusal": reply.refusal})
    if content:
        output.append(
            {
                "type": "message",
                "id": "msg_emu",
                "status": "completed",
                "role": "assistant",
                "content": content,
            }
        )
    for i, (c, cid) in enumerate(zip(reply.calls, call_ids, strict=True)):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_emu{i}",
                "call_id": cid,
                "name": c.name,
                "arguments": c.text(),
                "status": "completed",
            }
        )
    incomplete = None
    status = "completed"
    if reply.finish != "stop":
        status = "incomplete"
        reason = "max_output_tokens" if reply.finish == "length" else "content_filter"
        incomplete = {"reason": reason}
    return {
        "id": "resp_emu",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "store": False,
        "usage": {
            "input_tokens": usage.input,
            "input_tokens_details": {"cached_tokens": usage.cached},
            "output_tokens": usage.output,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning},
            "total_tokens": usage.input + usage.output,
        },
    }


def response_events(final: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream for `final`: created, per-item added/delta/done, then the terminal event."""
    shell = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": shell}]
    for index, item in enumerate(final["output"]):
        if item["type"] == "function_call":
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                }
            )
            events += [
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": p,
                }
                for p in pieces(item["arguments"], 2)
            ]
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "content": []} if item["type"] == "message" else item,
                }
            )
            for c_index, part in enumerate(item.get("content", [])):
                if part["type"] == "output_text":
                    events += [
                        {
                            "type": "response.output_text.delta",
                            "item_id": item["id"],
                            "output_index": index,
                            "content_index": c_index,
                            "delta": p,
                        }
                        for p in pieces(part["text"])
                    ]
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    terminal = "response.completed" if final["status"] == "completed" else "response.incomplete"
    events.append({"type": terminal, "response": final})
    return [{**e, "sequence_number": n} for n, e in enumerate(events)]
