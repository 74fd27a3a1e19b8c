"""Every exception `tiered` raises, in one tree rooted at `TieredError`.

Each message says what went wrong and what to do about it. Three families,
kept apart because callers handle them differently::

    TieredError
    ├── UserError                 misuse of the library: fix the code or config
    │   ├── UnknownModel
    │   └── LocalModelUnavailable
    ├── ControlFlow               raised by user code to steer the loop
    │   ├── ModelRetry            "tell the model this and let it try again"
    │   └── EscalationRequested   "this subtask is beyond this tier / plan-shaped"
    └── RunError                  a run (or one call in it) failed
        ├── ModelError            the provider call failed
        │   ├── RateLimited       (retryable, carries retry_after)
        │   ├── ModelTimeout      (retryable)
        │   ├── ProviderError     5xx / connection (retryable)
        │   ├── ContextTooLong
        │   ├── AuthenticationFailed
        │   ├── Refused
        │   └── BadModelResponse
        ├── OutputInvalid         still invalid after the repair turns
        ├── MaxTurnsExceeded      carries the transcript so far
        ├── BudgetExceeded
        ├── PlanInvalid           carries every problem found
        └── WeightsInvalid        local weights failed their checksum
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tiered._messages import Message
    from tiered._usage import Usage

__all__ = (
    "AuthenticationFailed",
    "BadModelResponse",
    "BudgetExceeded",
    "ContextTooLong",
    "ControlFlow",
    "EscalationRequested",
    "LocalModelUnavailable",
    "MaxTurnsExceeded",
    "ModelError",
    "ModelRetry",
    "ModelTimeout",
    "OutputInvalid",
    "PlanInvalid",
    "ProviderError",
    "RateLimited",
    "Refused",
    "RunError",
    "TieredError",
    "UnknownModel",
    "UserError",
    "WeightsInvalid",
)


class TieredError(Exception):
    """Root of every error `tiered` raises."""

    usage: Usage | None = None
    """Tokens the failed agent run had already used, when one was under way."""
    result: Any = None
    """The orchestrator's partial `RunResult` (usage so far), when a run was under way."""


# --- misuse ---------------------------------------------------------------------------


class UserError(TieredError):
    """The library was used wrongly: the message says which call or setting to fix."""


class UnknownModel(UserError):
    """A model name that is not in the catalog."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        super().__init__(
            f"unknown model {name!r}: register it with `catalog.register(ModelSpec(...))` "
            f"or use one of: {', '.join(sorted(known))}"
        )


class LocalModelUnavailable(UserError):
    """The embedded local model cannot start (missing extra, missing weights)."""


# --- control flow ---------------------------------------------------------------------


class ControlFlow(TieredError):
    """Raised by user code (tools, validators) to steer the agent loop, not a failure."""


class ModelRetry(ControlFlow):
    """Raise from a tool or output validator to send `message` back to the model as a retry."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class EscalationRequested(ControlFlow):
    """The executor says the subtask is beyond its tier or is plan-shaped."""

    def __init__(self, reason: str, *, plan_shaped: bool = False) -> None:
        self.reason = reason
        self.plan_shaped = plan_shaped
        self.messages: tuple[Message, ...] = ()
        super().__init__(f"escalation requested: {reason}")


# --- run failures ---------------------------------------------------------------------


class RunError(TieredError):
    """A run, or one call within it, failed."""


class ModelError(RunError):
    """The model provider call failed. `retryable` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, model: str | None = None, status: int | None = None):
        self.model = model
        self.status = status
        super().__init__(message)


class RateLimited(ModelError):
    """HTTP 429: slow down. `retry_after` is the provider's hint in seconds, if any."""

    retryable = True

    def __init__(self, *, model: str | None = None, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        hint = f"retry after {retry_after:g}s" if retry_after is not None else "back off and retry"
        super().__init__(
            f"rate limited by the provider for model {model!r}: {hint}, or lower the "
            "per-model concurrency limit",
            model=model,
            status=429,
        )


class ModelTimeout(ModelError):
    """The provider did not answer in time."""

    retryable = True


class ProviderError(ModelError):
    """A 5xx or connection failure at the provider; usually transient."""

    retryable = True


class ContextTooLong(ModelError):
    """The request does not fit the model's context window: shorten it or use a larger tier."""


class AuthenticationFailed(ModelError):
    """The API key was missing or rejected: set OPENAI_API_KEY or pass `api_key=`."""


class Refused(ModelError):
    """The model refused to answer (a safety refusal), carried in `refusal`."""

    def __init__(self, refusal: str, *, model: str | None = None) -> None:
        self.refusal = refusal
        super().__init__(f"model {model!r} refused: {refusal}", model=model)


class BadModelResponse(ModelError):
    """The provider answered with something we cannot read (no choices, bad JSON body)."""


class OutputInvalid(RunError):
    """The model's final output stayed invalid after every repair turn."""

    def __init__(self, message: str, *, errors: str, messages: Sequence[Message] = ()) -> None:
        self.errors = errors
        self.messages = tuple(messages)
        super().__init__(message)


class MaxTurnsExceeded(RunError):
    """The agent loop hit `max_turns` without a final output; `messages` holds the transcript."""

    def __init__(self, max_turns: int, messages: Sequence[Message]) -> None:
        self.max_turns = max_turns
        self.messages = tuple(messages)
        super().__init__(
            f"no final output after {max_turns} turns: raise `max_turns`, give the agent "
            "clearer instructions, or check the transcript in `.messages`"
        )


class BudgetExceeded(RunError):
    """A run budget (dollars, tokens or requests) would be exceeded; no new work starts."""

    def __init__(self, what: str, *, limit: Decimal | int, spent: Decimal | int) -> None:
        self.what = what
        self.limit = limit
        self.spent = spent
        super().__init__(
            f"budget exceeded: {what} spent {spent} of {limit}; raise the budget or "
            "narrow the goal (finished results are kept)"
        )


class PlanInvalid(RunError):
    """The planner's plan stayed invalid after its repair turns; `problems` lists each one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"the plan is invalid after repair turns:\n{listed}\n"
            "check the executors' names and input models, or simplify the goal"
        )


class WeightsInvalid(RunError):
    """Assembled local weights do not match their pinned checksum."""
