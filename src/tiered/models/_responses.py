"""The Responses API (`/v1/responses`): request bodies, response bodies, stream events.

Requests are stateless (`store=false`): the whole transcript goes as input items every
turn, and reasoning models return their reasoning as encrypted items that the next turn
sends back (`include=["reasoning.encrypted_content"]`, OpenAI's reasoning guide), so the
model keeps its train of thought across tool calls without the provider storing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from tiered._errors import ProviderError
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelDelta,
    ModelRequest,
    ModelResponse,
    ReasoningItem,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models import _wire as w
from tiered.models._chat import finish_response, sampling_temperature

__all__ = ("ResponsesStream", "body", "parse")

_REASONING_FAMILIES: Final = ("gpt-5", "o1", "o3", "o4")
"""Model names that reason, and so return reasoning items worth carrying across turns."""
_CONTENT_FILTER: Final = "the provider's content filter stopped the answer (incomplete)"


def body(model: str, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    """The Responses JSON body: input items, strict function tools, `text.format`,
    reasoning effort (with tools: the Responses API allows both), no server-side state."""
    messages = request.messages
    out: dict[str, Any] = {"model": model}
    if messages and isinstance(messages[0], SystemMessage):
        out["instructions"] = messages[0].content  # the stable head: cached first
        messages = messages[1:]
    out["input"] = [item for m in messages for item in _items(m)]
    if request.tools:
        out["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": t.strict,
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        out["tool_choice"] = (
            choice
            if choice in ("auto", "required", "none")
            else {"type": "function", "name": choice}
        )
        out["parallel_tool_calls"] = request.parallel_tool_calls
    schema = request.output_schema
    if schema is not None:
        out["text"] = {
            "format": {
                "type": "json_schema",
                "name": schema.name,
                "schema": schema.schema,
                "strict": schema.strict,
            }
        }
    if request.reasoning_effort is not None:
        out["reasoning"] = {"effort": request.reasoning_effort}
    out["store"] = False
    if request.reasoning_effort != "none" and model.startswith(_REASONING_FAMILIES):
        out["include"] = ["reasoning.encrypted_content"]
    agent = request.metadata.get("agent")
    if agent:  # one cache bucket per agent: its instructions and tools are its prefix
        out["prompt_cache_key"] = f"tiered-{agent}"[:64]
    temperature = sampling_temperature(model, request)
    if temperature is not None:
        out["temperature"] = temperature
    if request.max_output_tokens is not None:
        out["max_output_tokens"] = request.max_output_tokens
    if stream:
        out["stream"] = True
    return out


def _items(m: Message) -> list[dict[str, Any]]:
    """One message as Responses input items."""
    if isinstance(m, UserMessage):
        return [{"role": "user", "content": m.content}]
    if isinstance(m, SystemMessage):  # a later system message: developer instructions
        return [{"role": "developer", "content": m.content}]
    if isinstance(m, ToolResultMessage):
        return [{"type": "function_call_output", "call_id": m.tool_call_id, "output": m.content}]
    out: list[dict[str, Any]] = []
    for r in m.reasoning:
        item: dict[str, Any] = {
            "type": "reasoning",
            "id": r.id,
            "summary": [{"type": "summary_text", "text": t} for t in r.summary],
        }
        if r.encrypted_content is not None:
            item["encrypted_content"] = r.encrypted_content
        out.append(item)
    if m.content is not None:
        out.append({"role": "assistant", "content": m.content})
    out.extend(
        {"type": "function_call", "call_id": tc.id, "name": tc.name, "arguments": tc.arguments}
        for tc in m.tool_calls
    )
    return out


# --- responses ------------------------------------------------------------------------


def read_usage(raw: object) -> Usage:
    return w.usage(
        raw,
        "usage",
        input_key="input_tokens",
        output_key="output_tokens",
        input_details="input_tokens_details",
        output_details="output_tokens_details",
    )


def parse(data: object, *, fallback_model: str, cap: int | None) -> ModelResponse:
    """A `ModelResponse` from a Responses `response` object; raises `Malformed` (with
    `.usage` when readable), `OutputTruncated`, `Refused`, or `ProviderError` for a
    response that failed at the provider."""
    top = w.obj(data, "response")
    usage = read_usage(top.get("usage"))
    try:
        model_name = w.opt_str(top.get("model"), "model") or fallback_model
        status = w.opt_str(top.get("status"), "status")
        message = _message(w.items(w.field(top, "output", "response"), "output"))
        incomplete = w.opt_obj(top.get("incomplete_details"), "incomplete_details")
        reason = w.opt_str(incomplete.get("reason"), "incomplete_details.reason")
        error = w.opt_obj(top.get("error"), "error")
        detail = w.opt_str(error.get("message"), "error.message")
    except w.Malformed as exc:
        exc.usage = usage
        raise
    if status == "failed":
        failure = ProviderError(
            f"model {model_name!r} failed at the provider ({detail or 'no detail'}): usually "
            "transient; retry (RetryingModel) or try again later",
            model=model_name,
        )
        failure.usage = usage
        raise failure
    finish = "tool_calls" if message.tool_calls else "stop"
    if status == "incomplete":
        if reason == "content_filter":
            raise w.refused(model_name, _CONTENT_FILTER, usage)
        raise w.truncated(
            model_name, cap, message.content, usage, f"incomplete: {reason or 'no reason'}"
        )
    return finish_response(
        message, usage=usage, model_name=model_name, finish_reason=finish, cap=cap
    )


def _message(output: list[Any]) -> AssistantMessage:
    """The output items as one assistant message (text, refusal, calls, reasoning)."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[ReasoningItem] = []
    for i, raw in enumerate(output):
        where = f"output[{i}]"
        item = w.obj(raw, where)
        kind = w.string(w.field(item, "type", where), f"{where}.type")
        if kind == "message":
            for j, rawpart in enumerate(w.items(w.field(item, "content", where), where)):
                part = w.obj(rawpart, f"{where}.content[{j}]")
                ptype = part.get("type")
                if ptype == "output_text":
                    texts.append(w.string(w.field(part, "text", where), f"{where}.text"))
                elif ptype == "refusal":
                    refusals.append(w.string(w.field(part, "refusal", where), f"{where}.refusal"))
        elif kind == "function_call":
            calls.append(
                ToolCall(
                    id=w.string(w.field(item, "call_id", where), f"{where}.call_id"),
                    name=w.string(w.field(item, "name", where), f"{where}.name"),
                    arguments=w.string(w.field(item, "arguments", where), f"{where}.arguments"),
                )
            )
        elif kind == "reasoning":
            reasoning.append(_reasoning(item, where))
    return AssistantMessage(
        content="".join(texts) if texts else None,
        tool_calls=tuple(calls),
        refusal="".join(refusals) if refusals else None,
        reasoning=tuple(reasoning),
    )


def _reasoning(item: dict[str, Any], where: str) -> ReasoningItem:
    summary = []
    for j, raw in enumerate(w.items(item.get("summary") or [], f"{where}.summary")):
        part = w.obj(raw, f"{where}.summary[{j}]")
        summary.append(w.string(w.field(part, "text", where), f"{where}.summary.text"))
    return ReasoningItem(
        id=w.string(w.field(item, "id", where), f"{where}.id"),
        encrypted_content=w.opt_str(item.get("encrypted_content"), f"{where}.encrypted_content"),
        summary=tuple(summary),
    )


# --- streaming ------------------------------------------------------------------------

_TERMINAL: Final = ("response.completed", "response.incomplete", "response.failed")


@dataclass(slots=True)
class ResponsesStream:
    """Turns Responses stream events into deltas; the terminal event's `response` object
    (`response.completed`, with usage) becomes the final answer."""

    fallback_model: str
    cap: int | None
    final: dict[str, Any] | None = None
    usage: Usage | None = None
    """Always None until the terminal event: Responses report usage only there."""
    calls: dict[int, int] = field(default_factory=dict)
    """Output index of each function call item -> its position among the turn's calls."""

    def feed(self, event: object) -> list[ModelDelta]:
        """The deltas in one event; raises `Malformed` for a bad event."""
        data = w.obj(event, "event")
        kind = w.string(w.field(data, "type", "event"), "event.type")
        if kind == "response.output_text.delta":
            return [TextDelta(text=w.string(w.field(data, "delta", kind), f"{kind}.delta"))]
        if kind == "response.output_item.added":
            item = w.obj(w.field(data, "item", kind), f"{kind}.item")
            if item.get("type") != "function_call":
                return []
            index = w.count(data.get("output_index"), f"{kind}.output_index")
            position = self.calls.setdefault(index, len(self.calls))
            return [
                ToolCallDelta(
                    index=position,
                    id=w.string(w.field(item, "call_id", kind), f"{kind}.call_id"),
                    name=w.string(w.field(item, "name", kind), f"{kind}.name"),
                )
            ]
        if kind == "response.function_call_arguments.delta":
            index = w.count(data.get("output_index"), f"{kind}.output_index")
            position = self.calls.setdefault(index, len(self.calls))
            delta = w.string(w.field(data, "delta", kind), f"{kind}.delta")
            return [ToolCallDelta(index=position, arguments=delta)]
        if kind in _TERMINAL:
            self.final = w.obj(w.field(data, "response", kind), f"{kind}.response")
        elif kind == "error":
            message = w.opt_str(data.get("message"), "error.message") or "no detail"
            raise ProviderError(
                f"model {self.fallback_model!r} failed mid-stream ({message}): usually "
                "transient; retry (RetryingModel)",
                model=self.fallback_model,
            )
        return []

    def finish(self) -> ModelResponse:
        """The final response from the terminal event."""
        if self.final is None:
            w.fail("stream", "ended before response.completed")
        return parse(self.final, fallback_model=self.fallback_model, cap=self.cap)
