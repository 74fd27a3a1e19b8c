"""`RetryingModel`: retries transient provider failures, honouring Retry-After."""

from __future__ import annotations

import random

import anyio

from tiered._catalog import ModelSpec
from tiered._errors import ModelError, RateLimited
from tiered._logging import get_logger
from tiered._messages import ModelRequest, ModelResponse
from tiered.models._base import Model

__all__ = ("RetryingModel",)


class RetryingModel:
    """Wraps a model; retries a `ModelError` whose `retryable` is true, with backoff.

    The wait is the provider's Retry-After when given, else exponential with jitter,
    capped at `max_delay`. The last error is re-raised once `max_attempts` are spent.
    """

    def __init__(
        self,
        model: Model,
        *,
        max_attempts: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.wrapped = model
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    @property
    def spec(self) -> ModelSpec:
        """The wrapped model's spec."""
        return self.wrapped.spec

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self.wrapped.aclose()

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send `request`, retrying transient failures."""
        attempt = 1
        while True:
            try:
                return await self.wrapped.request(request)
            except ModelError as exc:
                if not exc.retryable or attempt >= self.max_attempts:
                    raise
                delay = self._delay(attempt, exc)
                get_logger().warning(
                    "model.retry",
                    model=self.spec.name,
                    attempt=attempt,
                    error=type(exc).__name__,
                    delay_s=round(delay, 3),
                )
                await anyio.sleep(delay)
                attempt += 1

    def _delay(self, attempt: int, exc: ModelError) -> float:
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(float(exc.retry_after), self.max_delay)
        backoff: float = self.base_delay * 2.0 ** (attempt - 1) * (0.5 + random.random())
        return min(backoff, self.max_delay)
