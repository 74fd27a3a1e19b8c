"""Provider-neutral messages, tool calls, and the request/response of one model call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tiered._names import check_name
from tiered._usage import Usage

__all__ = (
    "AssistantMessage",
    "Message",
    "ModelRequest",
    "ModelResponse",
    "OutputSchema",
    "ReasoningEffort",
    "SystemMessage",
    "ToolCall",
    "ToolDefinition",
    "ToolResultMessage",
    "UserMessage",
)

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """One function call the model asked for; `arguments` is the raw JSON text it sent."""

    id: str
    """Provider's id, echoed back in the tool result."""
    name: str
    """The tool's name."""
    arguments: str
    """JSON text of the arguments, unparsed: it may be malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemMessage:
    """Instructions: the stable head of every request."""

    content: str
    role: Literal["system"] = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserMessage:
    """Input from the user or the framework (a task, a repair prompt)."""

    content: str
    role: Literal["user"] = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantMessage:
    """What the model said: text, tool calls, or a refusal."""

    content: str | None = None
    """Text or JSON output; None when the turn only calls tools."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Calls to run before the next turn."""
    refusal: str | None = None
    """A safety refusal, if the model declined."""
    role: Literal["assistant"] = "assistant"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResultMessage:
    """A tool's result (or a precise error) sent back to the model."""

    tool_call_id: str
    name: str
    content: str
    is_error: bool = False
    """True when `content` explains a failure the model should fix."""
    role: Literal["tool"] = "tool"


Message = SystemMessage | UserMessage | AssistantMessage | ToolResultMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDefinition:
    """A function the model may call, with its strict JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object (strict-mode compatible)."""
    strict: bool = True

    def __post_init__(self) -> None:
        check_name(self.name, "tool")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSchema:
    """The JSON schema the final output must follow (structured output)."""

    name: str
    """Must match `^[a-zA-Z0-9_-]{1,64}$` (the API rejects anything else)."""
    schema: dict[str, Any]
    strict: bool = True

    def __post_init__(self) -> None:
        check_name(self.name, "output schema")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRequest:
    """Everything one model call needs; stable parts (instructions, tools) come first."""

    messages: tuple[Message, ...]
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: Literal["auto", "required", "none"] | str = "auto"
    """'auto', 'required', 'none', or a tool name to force."""
    parallel_tool_calls: bool = True
    output_schema: OutputSchema | None = None
    reasoning_effort: ReasoningEffort | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    """Free-form labels (agent, subtask id) for logs and scripted models."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResponse:
    """One model call's answer, its usage and the model that served it."""

    message: AssistantMessage
    usage: Usage
    model_name: str
    finish_reason: str | None = None
