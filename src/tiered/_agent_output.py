"""An agent's final output read from the model's reply: parsed as untrusted JSON, validated
against the output type, then checked by the agent's own `validate_output` hook. What fails
becomes a `Repair`: the problem to log and the prompt that sends the model back to fix it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from tiered._errors import ModelRetry, TieredError, UserError
from tiered._json import MAX_VALUES, UntrustedJson, clip, parse_untrusted
from tiered._messages import AssistantMessage
from tiered._schema import StrictSchema

__all__ = ("Repair", "final_output", "tool_output")


class Repair(Exception):
    """The final output needs a repair turn: `problem` for the log and the final error,
    `prompt` for the model."""

    def __init__(self, problem: str, prompt: str) -> None:
        self.problem = problem
        self.prompt = prompt
        super().__init__(problem)


async def final_output(
    reply: AssistantMessage,
    output: StrictSchema | None,
    check: Callable[[Any], Awaitable[Any]],
    max_values: int = MAX_VALUES,
) -> Any:
    """The typed output in `reply` (free text when `output` is None), passed through `check`
    (the agent's `validate_output`); raises `Repair` when the model must try again."""
    text = reply.content or ""
    if output is None:
        if not text.strip():
            raise Repair("the reply was empty", "Your reply was empty. Answer the task.")
        value: Any = text
    else:
        value = _validated(text, output, max_values)
    return await _checked(value, check)


async def tool_output(
    tool: str,
    content: str,
    output: StrictSchema | None,
    check: Callable[[Any], Awaitable[Any]],
) -> Any:
    """The typed output an agent's `output_tool` returned (its rendered result), through
    `check`; a result that is not the output type is the agent's misuse, a `UserError`."""
    if output is None:
        return await _checked(content, check)
    try:
        value = _validated(content, output)
    except Repair as exc:
        raise UserError(
            f"output_tool {tool!r} returned a value that is not the agent's output type "
            f"({exc.problem}); make the tool return the output type"
        ) from None
    return await _checked(value, check)


async def _checked(value: Any, check: Callable[[Any], Awaitable[Any]]) -> Any:
    try:
        return await check(value)
    except ModelRetry as exc:
        raise Repair(exc.message, exc.message) from None
    except ValidationError as exc:  # the hook built a model from a hostile output
        problem = clip(str(exc))
        raise Repair(problem, f"Your output was rejected: {problem}. Reply again.") from None


def _validated(text: str, output: StrictSchema, max_values: int = MAX_VALUES) -> Any:
    try:
        data = parse_untrusted(text, max_values=max_values)
    except UntrustedJson as exc:
        raise Repair(
            exc.worded("the output"),
            exc.worded("Your output")
            + ". Reply with one JSON object that matches the output schema.",
        ) from None
    try:
        return output.validate(data)
    except ModelRetry as exc:
        raise Repair(exc.message, exc.message) from None
    except TieredError:
        raise
    except Exception as exc:  # a ValidationError, or a field validator that broke
        problem = clip(str(exc))
        raise Repair(
            problem,
            f"Your output does not match the required schema: {problem}. "
            "Reply again with corrected JSON.",
        ) from None
