"""`RetryingModel`: waits out transient failures on the same model, then cools it down.

What is retried: rate limits (429), 5xx, timeouts, dropped or refused connections and
corrupt 200 bodies: every `ModelError` whose `retryable` is true. What is not: auth
failures, context too long, invalid requests, refusals. The wait is the provider's
Retry-After (or its rate-limit reset) when it gives one, else exponential backoff with
full jitter; no wait runs past the caller's deadline (`anyio.fail_after` /
`move_on_after` around the call), the error is raised instead. Rate limits never count
as failures: they are waited out for up to `rate_limit_patience` seconds. Other failures
feed a `CircuitBreaker`; once it opens, calls raise `ModelUnavailable` at once, and only
that tells an escalation policy to move on.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import anyio

from tiered._catalog import ModelSpec
from tiered._errors import ModelError, ModelUnavailable, RateLimited
from tiered._logging import get_logger
from tiered._messages import ModelRequest, ModelResponse
from tiered._metering import attempt_again, attempt_failed
from tiered.models._base import Model

__all__ = ("CircuitBreaker", "RetryingModel")


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False


class CircuitBreaker:
    """Per model name: after `threshold` failures in a row the model is cooled down for
    `cooldown` seconds (doubling, up to `max_cooldown`, while probes keep failing).

    After the cooldown one probe call is let through (half-open): success closes the
    circuit, failure opens it again. Share one breaker between wrappers to share the state.
    """

    def __init__(
        self, *, threshold: int = 5, cooldown: float = 30.0, max_cooldown: float = 300.0
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._circuits: dict[str, _Circuit] = {}

    def is_open(self, model: str) -> bool:
        """Whether calls to `model` are refused right now."""
        c = self._circuits.get(model)
        return c is not None and (time.monotonic() < c.open_until or c.probing)

    def before(self, model: str) -> bool:
        """Raise `ModelUnavailable` while `model` cools down; else let the call through.
        True when it goes as the one probe after a cooldown: record its outcome (or
        `neutral`), or the circuit stays half-open."""
        c = self._circuits.get(model)
        if c is None or c.open_until == 0.0:
            return False
        now = time.monotonic()
        if now < c.open_until or c.probing:
            wait = max(c.open_until - now, 0.0)
            raise ModelUnavailable(
                f"model {model!r} is cooling down after {c.failures} failures in a row "
                f"(circuit breaker open, next probe in {wait:.1f}s): use another model or "
                "tier, or try again later",
                model=model,
                retry_in=wait,
            )
        c.probing = True
        return True

    def success(self, model: str) -> None:
        """The model answered: close its circuit."""
        self._circuits.pop(model, None)

    def neutral(self, model: str) -> None:
        """The model answered with a rate limit or a client error: alive, not healthy yet."""
        c = self._circuits.get(model)
        if c is not None:
            c.probing = False

    def failure(self, model: str) -> bool:
        """Count a failure; True when it opened the circuit."""
        c = self._circuits.setdefault(model, _Circuit())
        c.failures += 1
        if c.probing or c.failures >= self.threshold:
            c.cooldown = self.cooldown if not c.probing else min(c.cooldown * 2, self.max_cooldown)
            c.open_until = time.monotonic() + c.cooldown
            c.probing = False
            return True
        return False


class RetryingModel:
    """Wraps a model; retries a retryable `ModelError` on the same model, waiting first.

    `max_attempts` bounds tries for failures other than rate limits; rate limits are
    retried until `rate_limit_patience` seconds of waiting are spent or the deadline
    comes. `breaker` (one per wrapper unless shared) cools a failing model down.
    """

    def __init__(
        self,
        model: Model,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        rate_limit_patience: float = 600.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.wrapped = model
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.rate_limit_patience = rate_limit_patience
        self.breaker = breaker if breaker is not None else CircuitBreaker()

    @property
    def spec(self) -> ModelSpec:
        """The wrapped model's spec."""
        return self.wrapped.spec

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self.wrapped.aclose()

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send `request`, waiting out and retrying transient failures."""
        name = self.spec.name
        failures = 0
        limited = 0  # rate limits so far: their backoff grows on its own count
        attempt = 0
        waited_on_limits = 0.0
        while True:
            attempt += 1
            probe = self.breaker.before(name)
            settled = False
            try:
                response = await self.wrapped.request(request)
            except ModelError as exc:
                settled = True
                if exc.rate_limited or not exc.retryable:
                    self.breaker.neutral(name)
                    if not exc.retryable:
                        raise
                else:
                    failures += 1
                    if self.breaker.failure(name):
                        attempt_failed(exc)
                        raise ModelUnavailable(
                            f"model {name!r} failed {failures} times in a row (last: "
                            f"{type(exc).__name__}: {exc}); it is cooling down for "
                            f"{self.breaker.cooldown:g}s: use another model or tier",
                            model=name,
                            retry_in=self.breaker.cooldown,
                        ) from exc
                    if failures >= self.max_attempts:
                        raise
                if exc.rate_limited:
                    limited += 1
                delay = self._delay(limited if exc.rate_limited else failures, exc)
                if exc.rate_limited:
                    if waited_on_limits + delay > self.rate_limit_patience:
                        raise
                    waited_on_limits += delay
                if delay > anyio.current_effective_deadline() - anyio.current_time():
                    raise  # the caller's deadline comes first: do not sleep past it
                attempt_failed(exc)
                get_logger().warning(
                    "model.retry",
                    model=name,
                    attempt=attempt,
                    failures=failures,
                    error=type(exc).__name__,
                    status=exc.status,
                    delay_s=round(delay, 3),
                )
                await anyio.sleep(delay)
                attempt_again()
                continue
            else:
                settled = True
                self.breaker.success(name)
                return response
            finally:
                if probe and not settled:  # cancelled or a foreign error: probe again later
                    self.breaker.neutral(name)

    def _delay(self, failures: int, exc: ModelError) -> float:
        """Retry-After (or the rate-limit reset) when given, else full-jitter backoff."""
        hint = _server_hint(exc)
        if hint is not None:
            return hint  # honoured exactly; PacedModel spreads a crowd told the same instant
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(failures - 1, 0))
        return random.uniform(0, ceiling)


def _server_hint(exc: ModelError) -> float | None:
    """Seconds the provider asked us to wait: Retry-After, else an exhausted bucket's reset."""
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return exc.retry_after
    info = exc.rate_limit
    if info is None or not exc.rate_limited:
        return None
    waits = [
        reset
        for remaining, reset in (
            (info.remaining_requests, info.reset_requests),
            (info.remaining_tokens, info.reset_tokens),
        )
        if remaining == 0 and reset is not None and math.isfinite(reset)
    ]
    return max(waits) if waits else None
