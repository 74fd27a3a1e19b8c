"""`ScriptedModel`: a model driven from Python, for testing agents with no key and no network."""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import BaseModel

from tiered._catalog import FREE, ModelSpec, Tier
from tiered._errors import UserError
from tiered._messages import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
)
from tiered._usage import Usage

__all__ = ("ScriptStep", "ScriptedModel", "call")

_ids = itertools.count(1)


def call(
    name: str, arguments: dict[str, Any] | str | None = None, *, id: str | None = None
) -> ToolCall:
    """A scripted tool call; pass `arguments` as a dict or as raw (possibly bad) JSON text."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ToolCall(id=id or f"call_{next(_ids)}", name=name, arguments=raw)


ScriptStep: TypeAlias = (
    ModelResponse
    | AssistantMessage
    | ToolCall
    | list[ToolCall]
    | str
    | dict[str, Any]
    | BaseModel
    | BaseException
)
"""One scripted reply: text, a dict or pydantic model (sent as JSON output), tool calls,
a whole message or response, or an exception to raise."""

Responder: TypeAlias = Callable[[ModelRequest], "ScriptStep | Awaitable[ScriptStep]"]


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _request_tokens(request: ModelRequest) -> int:
    n = 0
    for m in request.messages:
        content = getattr(m, "content", None)
        if content:
            n += _estimate_tokens(content)
        for tc in getattr(m, "tool_calls", ()):
            n += _estimate_tokens(tc.arguments) + 4
    for t in request.tools:
        n += _estimate_tokens(t.description) + 20
    return n + 3 * len(request.messages)


@dataclass(slots=True)
class _Script:
    steps: list[ScriptStep]
    position: int = 0


class ScriptedModel:
    """Answers from a list of steps, or from a function of the request.

    Usage is estimated at four characters a token unless a step is a full
    `ModelResponse`. Every request is kept in `requests` for assertions.
    """

    def __init__(
        self,
        script: Sequence[ScriptStep] | Responder,
        *,
        spec: ModelSpec | None = None,
        name: str = "scripted",
        tier: Tier = Tier.NANO,
    ) -> None:
        self._spec = spec or ModelSpec(
            name=name, tier=tier, context_window=400_000, max_output_tokens=128_000, pricing=FREE
        )
        self._script: _Script | None = None
        self._responder: Responder | None = None
        if callable(script):
            self._responder = script
        else:
            self._script = _Script(list(script))
        self.requests: list[ModelRequest] = []

    @property
    def spec(self) -> ModelSpec:
        """Name, tier and prices this model is metered at."""
        return self._spec

    async def aclose(self) -> None:
        """Nothing to release: a scripted model holds no resources."""

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Return the next scripted step (or the responder's answer) for `request`."""
        self.requests.append(request)
        if self._responder is not None:
            step = self._responder(request)
            if inspect.isawaitable(step):
                step = await step
        else:
            assert self._script is not None
            if self._script.position >= len(self._script.steps):
                raise UserError(
                    f"ScriptedModel {self._spec.name!r} ran out of steps after "
                    f"{len(self._script.steps)} requests: add steps to the script"
                )
            step = self._script.steps[self._script.position]
            self._script.position += 1
        return self._to_response(step, request)

    def assert_complete(self) -> None:
        """Fail if scripted steps were left unused."""
        if self._script is not None and self._script.position != len(self._script.steps):
            left = len(self._script.steps) - self._script.position
            raise AssertionError(f"ScriptedModel {self._spec.name!r}: {left} step(s) unused")

    def _to_response(self, step: ScriptStep, request: ModelRequest) -> ModelResponse:
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, ModelResponse):
            return step
        message = _to_message(step)
        out_text = (message.content or "") + "".join(
            tc.name + tc.arguments for tc in message.tool_calls
        )
        usage = Usage(
            input_tokens=_request_tokens(request),
            output_tokens=_estimate_tokens(out_text),
            requests=1,
        )
        return ModelResponse(
            message=message,
            usage=usage,
            model_name=self._spec.name,
            finish_reason="tool_calls" if message.tool_calls else "stop",
        )


def _to_message(step: ScriptStep) -> AssistantMessage:
    if isinstance(step, AssistantMessage):
        return step
    if isinstance(step, ToolCall):
        return AssistantMessage(tool_calls=(step,))
    if isinstance(step, list):
        return AssistantMessage(tool_calls=tuple(step))
    if isinstance(step, str):
        return AssistantMessage(content=step)
    if isinstance(step, BaseModel):
        return AssistantMessage(content=step.model_dump_json())
    if isinstance(step, dict):
        return AssistantMessage(content=json.dumps(step))
    raise UserError(f"ScriptedModel cannot reply with {type(step).__name__}: see ScriptStep")
