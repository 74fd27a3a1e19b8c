"""Provider-neutral messages, tool calls, and the request/response of one model call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from tiered._names import check_name
from tiered._usage import Usage

if TYPE_CHECKING:
    from tiered._ratelimit import RateLimitInfo

__all__ = (
    "AssistantMessage",
    "DeltaCallback",
    "Message",
    "ModelDelta",
    "ModelRequest",
    "ModelResponse",
    "OutputSchema",
    "ReasoningEffort",
    "ReasoningItem",
    "SystemMessage",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
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
class ReasoningItem:
    """A Responses API reasoning item, kept so the next turn can send it back.

    With `store=false` the provider keeps nothing between calls: the encrypted
    reasoning travels with the transcript instead (OpenAI's "reasoning items"
    guide, `include=["reasoning.encrypted_content"]`).
    """

    id: str
    """The provider's item id (`rs_...`)."""
    encrypted_content: str | None = field(default=None, repr=False)
    """Opaque reasoning state; only the provider can read it."""
    summary: tuple[str, ...] = ()
    """Reasoning summary texts, when the provider sent any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantMessage:
    """What the model said: text, tool calls, or a refusal."""

    content: str | None = None
    """Text or JSON output; None when the turn only calls tools."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Calls to run before the next turn."""
    refusal: str | None = None
    """A safety refusal, if the model declined."""
    reasoning: tuple[ReasoningItem, ...] = ()
    """Reasoning items to send back on the next turn (Responses API only)."""
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
    on_delta: DeltaCallback | None = field(default=None, compare=False, repr=False)
    """Called with each piece of the answer as it streams in. A model that can stream
    does so when this is set; one that cannot ignores it and just answers. Wrappers
    (`RetryingModel`) pass the request on unchanged, so streaming survives them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResponse:
    """One model call's answer, its usage and the model that served it."""

    message: AssistantMessage
    usage: Usage
    model_name: str
    finish_reason: str | None = None
    rate_limit: RateLimitInfo | None = None
    """The provider's `x-ratelimit-*` headers on this reply, when it sent them (pacing
    adapts to them)."""
    confidence: float | None = None
    """The probability the model gave the least sure token of this reply that is not
    whitespace (None: it reported no token probabilities). A router can send a reply
    the model was unsure of to a higher tier (`tiered.confidence`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    """A piece of the answer's text as it streams in."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallDelta:
    """A piece of a tool call as it streams in; `index` says which call of the turn.

    The first delta of a call carries its `id` and `name`; later ones only more
    `arguments` text. Join the pieces by `index` to get the whole call.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


ModelDelta: TypeAlias = TextDelta | ToolCallDelta
"""One streamed piece of a model's answer."""

DeltaCallback: TypeAlias = Callable[[ModelDelta], None]
"""Receives each `ModelDelta`; it must not block (put it on a queue or an event)."""
