"""The embedded model's prompt and output protocol: our own ChatML, tools as constrained JSON.

The runtime never returns native tool calls, so tools and structured output become
schema-constrained decoding: the model answers with one JSON object, either
``{"tool_calls": [{"name": NAME, "arguments": {...}}, ...]}`` or ``{"final_answer": ...}``,
which we parse back into an `AssistantMessage`. Where the request allows parallel calls the
call branch can be ``{"requests": [...], "tool_calls": [...]}``: the model lists the
separate things asked for, then makes a call for each (a counting aid for the models it
helps; see `REQUESTS_FIRST`).

Prompt layout is chosen for llama.cpp's prompt cache: everything that stays the same
across the turns of an agent and across runs (instructions, the whole tool list, the
output schema) comes first, in the system turn; what depends on the turn (`tool_choice`,
the nudge after tool results) comes last, in the final user turn, so a second turn
re-reads only the conversation's new tail.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tiered._errors import BadModelResponse, UserError
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelRequest,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from tiered.models._local_schema import check_schema, envelope_object, hoist
from tiered.models._local_sketch import sketch

__all__ = (
    "DEFAULT_SYSTEM_PROMPT",
    "MAX_PARALLEL_CALLS",
    "Protocol",
    "calls_start",
    "parse_reply",
    "protocol_for",
    "render_prompt",
)

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

_SPECIAL = re.compile(r"<\|([A-Za-z0-9_]+)\|>")


MAX_PARALLEL_CALLS = 8
"""The most tool calls one embedded-model turn may list (more come in a later turn)."""

REQUESTS_FIRST = (
    '{"requests": ["<one separate thing asked for>", ...], "tool_calls": '
    '[{"name": "<tool name>", "arguments": {...}}, ...]}: first list each separate thing the '
    "user asks for, then make one call for each; "
)
"""The call shape, where parallel calls are allowed, for a model that lists requests first.
Small models made too few calls (the 1.5B one call for "navy, purple and maroon"); the
list took the 1.5B's BFCL `parallel` from 3/8 to 5/8 on held-out cases. The 0.5B gained
one `parallel` case and lost 8 of 30 `multiple` ones (calling every tool offered, or
none), so it is off there (`LocalWeights.lists_requests`)."""

_ONE_SHAPE = '{"tool_calls": [{"name": "<tool name>", "arguments": {...}}, ...]}: '


def _defang(text: str) -> str:
    """Keep text that spells a special token (`<|im_end|>`) from acting as one.

    llama.cpp parses special tokens in completion prompts, so message content could
    otherwise close its turn and forge the next one.
    """
    return _SPECIAL.sub("<\u2060|\\1|>", text)


AFTER_RESULTS = (
    "Use the results above: give your final answer, or call more tools only if you still need them."
)
"""The nudge after tool results: without it the 0.5B calls the same tool again forever."""


def _turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def _call_json(call: ToolCall) -> dict[str, Any]:
    """A past tool call, in the same JSON shape the model is constrained to write."""
    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return {"name": call.name, "arguments": arguments}


def _calls_text(calls: Sequence[ToolCall]) -> str:
    return json.dumps({"tool_calls": [_call_json(c) for c in calls]}, ensure_ascii=False)


def _tool_result(msg: ToolResultMessage) -> str:
    status = ' status="error"' if msg.is_error else ""
    return (
        f'<tool_response name="{_defang(msg.name)}"{status}>\n'
        f"{_defang(msg.content)}\n</tool_response>"
    )


def render_prompt(messages: Sequence[Message], instructions: str = "", directive: str = "") -> str:
    """The ChatML (Qwen2.5) prompt for `messages`, ending where the assistant speaks.

    Leading system messages and `instructions` make the first system turn; tool results
    go back as user turns of `<tool_response>` blocks, as Qwen2.5 was trained to read.
    `directive` (what to do this turn) ends the last user turn, after every stable part.
    """
    head: list[str] = []
    i = 0
    for msg in messages:
        if not isinstance(msg, SystemMessage):
            break
        head.append(_defang(msg.content))
        i += 1
    system = "\n\n".join(head) or DEFAULT_SYSTEM_PROMPT
    if instructions:
        system = f"{system}\n\n{instructions}"
    parts = [_turn("system", system)]
    pending: list[str] = []  # the current user-side turn, closed when the assistant speaks

    def close() -> None:
        if pending:
            parts.append(_turn("user", "\n".join(pending)))
            pending.clear()

    results = False
    for msg in messages[i:]:
        if not isinstance(msg, ToolResultMessage) and results:
            pending.append(AFTER_RESULTS)
            results = False
        match msg:
            case ToolResultMessage():
                pending.append(_tool_result(msg))
                results = True
            case SystemMessage(content=content):
                close()
                parts.append(_turn("system", _defang(content)))
            case UserMessage(content=content):
                pending.append(_defang(content))
            case AssistantMessage():
                close()
                text = msg.content or msg.refusal or ""
                lines = [_defang(text)] if (text or not msg.tool_calls) else []
                if msg.tool_calls:
                    lines.append(_defang(_calls_text(msg.tool_calls)))
                parts.append(_turn("assistant", "\n".join(lines)))
    if results:
        pending.append(AFTER_RESULTS)
    if directive:
        pending.append(directive)
    close()
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


# --- tools and structured output as constrained JSON ----------------------------------


@dataclass(frozen=True, slots=True)
class Protocol:
    """How one request is put to the model and how its text is read back."""

    mode: Literal["text", "json", "tools"]
    schema: dict[str, Any] | None = None
    """The JSON schema the output is constrained to (None: free text)."""
    instructions: str = ""
    """Stable protocol text for the system turn: the same on every turn of an agent."""
    directive: str = ""
    """This turn's instruction (from `tool_choice`), rendered after the conversation."""
    tool_names: frozenset[str] = frozenset()
    structured: bool = False
    """In tools mode: whether final_answer is structured output (else a string)."""
    requests_first: bool = False
    """In tools mode: whether a call reply lists the requests before its calls."""


def protocol_for(request: ModelRequest, *, list_requests: bool = False) -> Protocol:
    """The protocol for `request`: free text, one JSON value, or the tool envelope;
    `list_requests`: where parallel calls are allowed, the requests come first."""
    out = request.output_schema
    if out is not None:
        check_schema(out.schema, f"output schema {out.name!r}")
    if not request.tools:
        if out is None:
            return Protocol("text")
        return Protocol(
            "json",
            schema=dict(out.schema),
            instructions="Reply with one JSON object of this shape, and nothing else:\n"
            + sketch(out.schema),
        )
    choice = request.tool_choice
    callable_tools: Sequence[ToolDefinition] = request.tools if choice != "none" else ()
    directive = ""
    if choice == "required":
        directive = "Call a tool now."
    elif choice == "none":
        directive = "Do not call a tool now: give your final answer."
    elif choice != "auto":
        callable_tools = [t for t in request.tools if t.name == choice]
        if not callable_tools:
            raise UserError(
                f"tool_choice names {choice!r}, which is not among the request's tools: "
                f"{', '.join(t.name for t in request.tools) or 'none'}"
            )
        directive = f"Call the tool {choice} now."
    first = list_requests and request.parallel_tool_calls
    defs: dict[str, Any] = {}
    calls: list[dict[str, Any]] = []
    described: list[str] = []
    for i, tool in enumerate(request.tools):  # every tool is described: a stable prompt
        check_schema(tool.parameters, f"the parameters of tool {tool.name!r}")
        described.append(
            f"- {tool.name}: {tool.description.strip()}\n  arguments: {sketch(tool.parameters)}"
        )
        if tool in callable_tools:
            params = hoist(tool.parameters, f"t{i}_", defs)
            calls.append(envelope_object({"name": {"const": tool.name}, "arguments": params}))
    final_schema = hoist(out.schema, "out_", defs) if out is not None else {"type": "string"}
    branches: list[dict[str, Any]] = []
    if calls:
        array: dict[str, Any] = {"type": "array", "items": {"anyOf": calls}, "minItems": 1}
        # one call, or a bounded list: a small model that starts repeating calls would
        # otherwise run into the output cap mid-array and lose the whole turn
        array["maxItems"] = MAX_PARALLEL_CALLS if request.parallel_tool_calls else 1
        if first:
            asks = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_PARALLEL_CALLS}
            branches.append(envelope_object({"requests": asks, "tool_calls": array}))
        else:
            branches.append(envelope_object({"tool_calls": array}))
    if choice in ("auto", "none"):
        branches.append(envelope_object({"final_answer": final_schema}))
    schema: dict[str, Any] = {"anyOf": branches}
    if defs:
        schema["$defs"] = defs
    answer = "a JSON value of the shape below" if out else "your answer as text"
    many = (
        "one entry per call; when the request needs several calls that do not depend on "
        "each other's results, list them all in this one reply"
        if request.parallel_tool_calls
        else "one call per reply"
    )
    shape = REQUESTS_FIRST if first else _ONE_SHAPE
    lines = [
        "You can call tools. Reply with exactly one JSON object and nothing else:",
        "- to call tools: " + shape + many,
        f'- to give your final answer: {{"final_answer": <{answer}>}}',
        "Tools:",
        *described,
        # without this line the 0.5B answered from memory in 5 of 8 BFCL `multiple` cases
        # (2 to 4 tools offered); with it, 3 of 8 (other wordings: 3-5 of 8)
        "When a tool above can do what is asked, call it rather than answering yourself. "
        "Each tool result comes back in a <tool_response> block; once you have what you "
        "need, give the final answer.",
    ]
    if out is not None:
        lines.append(f"Shape of final_answer: {sketch(out.schema)}")
    return Protocol(
        "tools",
        schema=schema,
        instructions="\n".join(lines),
        directive=directive,
        tool_names=frozenset(t.name for t in callable_tools),
        structured=out is not None,
        requests_first=first,
    )


def parse_reply(text: str, protocol: Protocol, model: str) -> AssistantMessage:
    """Read the constrained JSON back into a message; anything else is a bad response."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadModelResponse(
            f"{model} returned text that is not JSON despite the schema constraint "
            f"({exc}): {text[:200]!r}",
            model=model,
        ) from exc
    if protocol.mode == "json":
        return AssistantMessage(content=json.dumps(value, ensure_ascii=False))
    keys = {"requests", "tool_calls"} if protocol.requests_first else {"tool_calls"}
    if isinstance(value, dict) and set(value) == keys:
        calls = _calls(value["tool_calls"], protocol)
        if calls:
            return AssistantMessage(tool_calls=calls)
    elif isinstance(value, dict) and set(value) == {"final_answer"}:
        answer = value["final_answer"]
        if protocol.structured:
            return AssistantMessage(content=json.dumps(answer, ensure_ascii=False))
        if isinstance(answer, str):
            return AssistantMessage(content=answer)
    raise BadModelResponse(
        f"{model} answered JSON outside the tool protocol: {text[:200]!r}", model=model
    )


_CALLS_KEY = '"tool_calls":'


def calls_start(text: str, protocol: Protocol) -> int:
    """Where the calls begin in a reply's `text`: past the list of requests written before
    them (0 where there is none), which is paraphrase of the question, not a decision."""
    if protocol.requests_first and text.startswith('{"requests"'):
        at = text.find(_CALLS_KEY)
        if at >= 0:
            return at + len(_CALLS_KEY)
    return 0


def _calls(raw: Any, protocol: Protocol) -> tuple[ToolCall, ...]:
    """The calls in a `tool_calls` list; empty when any entry is off-protocol."""
    if not isinstance(raw, list):
        return ()
    calls: list[ToolCall] = []
    for entry in raw:
        if not (isinstance(entry, dict) and set(entry) == {"name", "arguments"}):
            return ()
        name, arguments = entry["name"], entry["arguments"]
        if name not in protocol.tool_names or not isinstance(arguments, dict):
            return ()
        calls.append(
            ToolCall(
                id=f"call_{uuid.uuid4().hex[:24]}",
                name=name,
                arguments=json.dumps(arguments, ensure_ascii=False),
            )
        )
    return tuple(calls)
