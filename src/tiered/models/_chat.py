"""Chat completions (`/v1/chat/completions`): request bodies, response bodies, stream chunks.

Plain dicts in, plain dicts out: no SDK models are built, so the adapter adds little CPU.
Every read goes through `_wire`, so a malformed body is a `BadModelResponse`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tiered._logging import get_logger
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelDelta,
    ModelRequest,
    ModelResponse,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models import _wire as w

__all__ = ("ChatStream", "body", "parse")

_CONTENT_FILTER = "the provider's content filter stopped the answer (finish_reason=content_filter)"


def body(model: str, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    """The chat completions JSON body; options left unset are left out.

    On a gpt-5.4 model, function tools and `reasoning_effort` are never sent together:
    OpenAI answers that combination with a 400 on chat completions ("Function tools with
    reasoning_effort are not supported for gpt-5.4 in /v1/chat/completions"), and every
    executor has at least the `escalate` tool, so `reasoning_effort` is dropped with a
    logged warning. Use `api="responses"` to reason and call tools together.
    """
    out: dict[str, Any] = {"model": model, "messages": [_message(m) for m in request.messages]}
    if request.tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "strict": t.strict,
                },
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        out["tool_choice"] = (
            choice
            if choice in ("auto", "required", "none")
            else {"type": "function", "function": {"name": choice}}
        )
        out["parallel_tool_calls"] = request.parallel_tool_calls
    schema = request.output_schema
    if schema is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema.name, "schema": schema.schema, "strict": schema.strict},
        }
    effort = request.reasoning_effort
    if effort is not None and request.tools and model.startswith("gpt-5.4"):
        get_logger().warning(
            "openai.reasoning_effort_dropped",
            model=model,
            reason="gpt-5.4 on chat completions rejects function tools with reasoning_effort; "
            'use OpenAIModel(api="responses") to reason with tools',
        )
        effort = None
    if effort is not None:
        out["reasoning_effort"] = effort
    temperature = sampling_temperature(model, request)
    if temperature is not None:
        out["temperature"] = temperature
    if request.max_output_tokens is not None:
        out["max_completion_tokens"] = request.max_output_tokens
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def sampling_temperature(model: str, request: ModelRequest) -> float | None:
    """The temperature to send: none while reasoning, since OpenAI's reasoning models accept
    sampling parameters only with `reasoning_effort` "none" (GPT-5 guide)."""
    effort = request.reasoning_effort
    if request.temperature is None or effort is None or effort == "none":
        return request.temperature
    get_logger().warning(
        "openai.temperature_dropped",
        model=model,
        reason=f"temperature is not accepted with reasoning_effort={effort!r}",
    )
    return None


def _message(m: Message) -> dict[str, Any]:
    """One message in chat completions form (reasoning items have no place here)."""
    if isinstance(m, UserMessage | SystemMessage):
        return {"role": m.role, "content": m.content}
    if isinstance(m, ToolResultMessage):
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    out: dict[str, Any] = {"role": "assistant"}
    if m.content is not None:
        out["content"] = m.content
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": tc.id,
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments},
            }
            for tc in m.tool_calls
        ]
    if m.refusal is not None:
        out["refusal"] = m.refusal
    return out


# --- responses ------------------------------------------------------------------------


def read_usage(raw: object) -> Usage:
    return w.usage(
        raw,
        "usage",
        input_key="prompt_tokens",
        output_key="completion_tokens",
        input_details="prompt_tokens_details",
        output_details="completion_tokens_details",
    )


def parse(data: object, *, fallback_model: str, cap: int | None) -> ModelResponse:
    """A `ModelResponse` from a chat completion body; raises `Malformed` for a bad body
    (with `.usage` set on it when usage was readable), `OutputTruncated` or `Refused`."""
    top = w.obj(data, "body")
    usage = read_usage(top.get("usage"))
    try:
        model_name = w.opt_str(top.get("model"), "model") or fallback_model
        choices = w.items(w.field(top, "choices", "body"), "choices")
        if not choices:
            w.fail("choices", "empty")
        choice = w.obj(choices[0], "choices[0]")
        msg = w.obj(w.field(choice, "message", "choices[0]"), "message")
        content = _content(msg.get("content"), "message.content")
        refusal = w.opt_str(msg.get("refusal"), "message.refusal")
        raw_calls = msg.get("tool_calls")
        calls = () if raw_calls is None else _tool_calls(w.items(raw_calls, "tool_calls"))
        finish = w.opt_str(choice.get("finish_reason"), "finish_reason")
    except w.Malformed as exc:
        exc.usage = usage
        raise
    return finish_response(
        AssistantMessage(content=content, tool_calls=calls, refusal=refusal),
        usage=usage,
        model_name=model_name,
        finish_reason=finish,
        cap=cap,
    )


def finish_response(
    message: AssistantMessage,
    *,
    usage: Usage,
    model_name: str,
    finish_reason: str | None,
    cap: int | None,
) -> ModelResponse:
    """The response, unless the answer was refused, filtered or cut off."""
    if message.refusal is not None:
        raise w.refused(model_name, message.refusal, usage)
    if finish_reason == "content_filter":
        raise w.refused(model_name, _CONTENT_FILTER, usage)
    if finish_reason == "length":
        raise w.truncated(model_name, cap, message.content, usage, "finish_reason=length")
    return ModelResponse(
        message=message, usage=usage, model_name=model_name, finish_reason=finish_reason
    )


def _content(value: object, where: str) -> str | None:
    """Message content: a string, or (some servers) a list of text parts."""
    if value is None or isinstance(value, str):
        return value
    parts = w.items(value, where)
    texts = []
    for i, part in enumerate(parts):
        p = w.obj(part, f"{where}[{i}]")
        texts.append(w.string(w.field(p, "text", f"{where}[{i}]"), f"{where}[{i}].text"))
    return "".join(texts)


def _tool_calls(raw: list[Any]) -> tuple[ToolCall, ...]:
    out = []
    for i, item in enumerate(raw):
        where = f"tool_calls[{i}]"
        call = w.obj(item, where)
        function = w.obj(w.field(call, "function", where), f"{where}.function")
        out.append(
            ToolCall(
                id=w.string(w.field(call, "id", where), f"{where}.id"),
                name=w.string(w.field(function, "name", where), f"{where}.name"),
                arguments=_arguments(function.get("arguments")),
            )
        )
    return tuple(out)


def _arguments(value: object) -> str:
    """Arguments kept as the raw text the model sent (some servers send an object)."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        w.fail("function.arguments", "not JSON text")


# --- streaming ------------------------------------------------------------------------


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ChatStream:
    """Folds `chat.completion.chunk` events into deltas and, at the end, the response."""

    fallback_model: str
    cap: int | None
    model_name: str | None = None
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None

    def feed(self, event: object) -> list[ModelDelta]:
        """The deltas in one chunk; raises `Malformed` for a bad chunk."""
        chunk = w.obj(event, "chunk")
        if chunk.get("usage") is not None:  # the last chunk, with include_usage
            self.usage = read_usage(chunk["usage"])
        self.model_name = self.model_name or w.opt_str(chunk.get("model"), "chunk.model")
        deltas: list[ModelDelta] = []
        for i, raw in enumerate(w.items(chunk.get("choices") or [], "chunk.choices")):
            choice = w.obj(raw, f"chunk.choices[{i}]")
            if choice.get("index", 0) != 0:
                continue
            finish = w.opt_str(choice.get("finish_reason"), "finish_reason")
            self.finish_reason = finish or self.finish_reason
            delta = w.opt_obj(choice.get("delta"), "delta")
            text = _content(delta.get("content"), "delta.content")
            if text:
                self.text.append(text)
                deltas.append(TextDelta(text=text))
            refusal = w.opt_str(delta.get("refusal"), "delta.refusal")
            if refusal:
                self.refusal.append(refusal)
            for j, rc in enumerate(w.items(delta.get("tool_calls") or [], "delta.tool_calls")):
                deltas.append(self._call_delta(w.obj(rc, f"delta.tool_calls[{j}]")))
        return deltas

    def _call_delta(self, raw: dict[str, Any]) -> ToolCallDelta:
        index = w.count(raw.get("index"), "tool_calls.index")
        part = self.calls.setdefault(index, _PartialCall())
        call_id = w.opt_str(raw.get("id"), "tool_calls.id")
        function = w.opt_obj(raw.get("function"), "tool_calls.function")
        name = w.opt_str(function.get("name"), "tool_calls.function.name")
        args = w.opt_str(function.get("arguments"), "tool_calls.function.arguments") or ""
        part.id = call_id or part.id
        part.name = name or part.name
        part.arguments.append(args)
        return ToolCallDelta(index=index, id=call_id, name=name, arguments=args)

    def finish(self) -> ModelResponse:
        """The whole response once the stream ended; `Malformed` when it ended before the
        chunk with the `finish_reason` (cut off: what came is never taken for the answer)."""
        if self.finish_reason is None:
            raise w.Malformed(
                "stream", "it ended before a finish_reason (cut off mid-answer)", usage=self.usage
            )
        usage = self.usage or Usage(requests=1)
        calls = []
        for index in sorted(self.calls):
            part = self.calls[index]
            if not part.id or not part.name:
                raise w.Malformed(
                    f"tool_calls[{index}]", "no id or name in the stream", usage=self.usage
                )
            calls.append(ToolCall(id=part.id, name=part.name, arguments="".join(part.arguments)))
        message = AssistantMessage(
            content="".join(self.text) if self.text else None,
            tool_calls=tuple(calls),
            refusal="".join(self.refusal) if self.refusal else None,
        )
        return finish_response(
            message,
            usage=usage,
            model_name=self.model_name or self.fallback_model,
            finish_reason=self.finish_reason,
            cap=self.cap,
        )
