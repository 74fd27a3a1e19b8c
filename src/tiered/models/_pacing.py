"""Pacing: requests- and tokens-per-minute token buckets per model name.

`RateLimits` holds the buckets; every `PacedModel` given the same object draws from the
same buckets, so several agents, runs or orchestrators share one organisation's limits.
A call takes one request and its estimated tokens (prompt estimate plus the request's
maximum output, as OpenAI counts them) before it is sent, FIFO: a caller that must wait
is given its slot at once and sleeps until then. When the answer comes, the token
estimate is corrected to the usage reported. The buckets follow the provider's
`x-ratelimit-*` headers: a lower reported limit replaces the configured one, and the
reported remaining count lowers the local level (another process may share the key); a
429 pauses every caller of that model for the Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import anyio

from tiered._catalog import ModelSpec
from tiered._errors import ModelError, RateLimited
from tiered._messages import ModelRequest, ModelResponse
from tiered._metering import attempt_not_sent
from tiered._ratelimit import DEFAULT_OUTPUT_CAP, RateLimitInfo, estimate_input_tokens
from tiered.models._base import Model
from tiered.models._buckets import Bucket, Pace
from tiered.models._retry import RetryingModel
from tiered.models._select import Ladder

__all__ = ("PacedModel", "RateLimits", "pace_ladder")


class RateLimits:
    """Requests and tokens per minute, per model name, shared by every holder.

    `rpm` and `tpm` apply to every model; `models` overrides them by name, e.g.
    `{"gpt-5.4": {"rpm": 500, "tpm": 500_000}}`. A model with no configured limit is
    paced from the provider's headers once it has sent them (with `adapt`, the default).
    `period` is the window the limits are counted over (60 s: per minute). `headroom`
    (seconds) trims the initial burst by what that long refills, for network delay.
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        models: Mapping[str, Mapping[str, int]] | None = None,
        period: float = 60.0,
        headroom: float = 1.0,
        adapt: bool = True,
    ) -> None:
        for value in (rpm, tpm):
            if value is not None and value < 1:
                raise ValueError("rpm and tpm must be at least 1 (or None for no limit)")
        if period <= 0:
            raise ValueError("period must be positive")
        self.rpm = rpm
        self.tpm = tpm
        self.models = {k: dict(v) for k, v in (models or {}).items()}
        self.period = period
        self.headroom = headroom
        self.adapt = adapt
        self._paces: dict[str, Pace] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimits(rpm={self.rpm}, tpm={self.tpm}, models={self.models!r})"

    def _pace(self, model: str) -> Pace:
        pace = self._paces.get(model)
        if pace is None:
            own = self.models.get(model, {})
            rpm, tpm = own.get("rpm", self.rpm), own.get("tpm", self.tpm)
            pace = self._paces[model] = Pace(
                rpm=rpm,
                tpm=tpm,
                requests=Bucket(rpm, self.period, self.headroom) if rpm else None,
                tokens=Bucket(tpm, self.period, self.headroom) if tpm else None,
            )
        return pace

    async def acquire(self, model: str, tokens: int) -> _Permit:
        """Wait for one request and `tokens` tokens of `model`'s limits; FIFO."""
        with self._lock:
            pace = self._pace(model)
            now = time.monotonic()
            rmark = pace.requests.take(1, now) if pace.requests else 0.0
            tmark = pace.tokens.take(tokens, now) if pace.tokens else 0.0
        permit = _Permit(self, pace, tokens)
        done = False
        try:
            while True:
                with self._lock:
                    now = time.monotonic()
                    wait = max(
                        pace.requests.wait_for(rmark, now) if pace.requests else 0.0,
                        pace.tokens.wait_for(tmark, now) if pace.tokens else 0.0,
                        pace.blocked_until - now,
                    )
                    if wait <= 0:
                        _grant(pace, rmark, tmark)
                        break
                    if pace.changed is None:
                        pace.changed = anyio.Event()
                    changed = pace.changed
                with anyio.move_on_after(wait):
                    await changed.wait()
            done = True
        finally:
            if not done:  # cancelled while queued: give the slot back
                with self._lock:
                    _grant(pace, rmark, tmark)
                permit.refund(requests=True)
        return permit

    def observe(self, model: str, info: RateLimitInfo | None) -> None:
        """Follow the provider's view: a lower limit, fewer remaining, a pause at zero."""
        if info is None or not self.adapt:
            return
        with self._lock:
            pace = self._pace(model)
            now = time.monotonic()
            pace.requests = self._follow(
                pace.requests, pace.rpm, info.limit_requests, info.remaining_requests, now
            )
            pace.tokens = self._follow(
                pace.tokens, pace.tpm, info.limit_tokens, info.remaining_tokens, now
            )

    def _follow(
        self,
        bucket: Bucket | None,
        configured: int | None,
        limit: int | None,
        remaining: int | None,
        now: float,
    ) -> Bucket | None:
        if limit is not None and limit > 0:
            wanted = float(limit if configured is None else min(limit, configured))
            if bucket is None:
                bucket = Bucket(wanted, self.period, self.headroom, stamp=now)
            else:
                bucket.refill(now)
                bucket.resize(wanted)
        if bucket is not None and remaining is not None:
            bucket.refill(now)
            bucket.lower_to(float(remaining))
        return bucket

    def pause(self, model: str, seconds: float) -> None:
        """Hold every caller of `model` for `seconds` (after a 429)."""
        with self._lock:
            pace = self._pace(model)
            pace.blocked_until = max(pace.blocked_until, time.monotonic() + max(seconds, 0.0))

    def limits(self, model: str) -> tuple[float | None, float | None]:
        """(requests, tokens) per period in force for `model` now (None: not paced)."""
        with self._lock:
            pace = self._pace(model)
            return (
                pace.requests.limit if pace.requests else None,
                pace.tokens.limit if pace.tokens else None,
            )


def _grant(pace: Pace, rmark: float, tmark: float) -> None:
    if pace.requests is not None:
        pace.requests.grant(rmark)
    if pace.tokens is not None:
        pace.tokens.grant(tmark)


class _Permit:
    """One call's draw on the buckets; `settle` corrects the token estimate."""

    __slots__ = ("_limits", "_pace", "open", "tokens")

    def __init__(self, limits: RateLimits, pace: Pace, tokens: int) -> None:
        self._limits = limits
        self._pace = pace
        self.tokens = tokens
        self.open = True

    def refund(self, *, requests: bool = False) -> None:
        self.settle(0, requests=requests)

    def settle(self, actual_tokens: int, *, requests: bool = False) -> None:
        if not self.open:
            return
        self.open = False
        with self._limits._lock:
            pace = self._pace
            if pace.tokens is not None:
                bucket = pace.tokens
                bucket.refill(time.monotonic())
                refund = min(self.tokens, bucket.capacity) - min(actual_tokens, bucket.capacity)
                if refund >= 0:
                    bucket.give_back(refund)
                else:  # used more than estimated: the queue waits for it
                    bucket.supply += refund
            if requests and pace.requests is not None:
                pace.requests.give_back(1)
            pace.notify()


class PacedModel:
    """Wraps a model so each call waits for its share of `limits` before it is sent.

    Put it under `RetryingModel` (`RetryingModel(PacedModel(model, limits))`) so every
    retry is paced too.
    """

    def __init__(self, model: Model, limits: RateLimits) -> None:
        self.wrapped = model
        self.limits = limits

    @property
    def spec(self) -> ModelSpec:
        """The wrapped model's spec."""
        return self.wrapped.spec

    async def aclose(self) -> None:
        """Close the wrapped model's client, if it has one."""
        close = getattr(self.wrapped, "aclose", None)
        if close is not None:
            await close()

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Wait for the model's request and token buckets, then send `request`."""
        name = self.spec.name
        cap = request.max_output_tokens or min(self.spec.max_output_tokens, DEFAULT_OUTPUT_CAP)
        tokens = estimate_input_tokens(request) + cap
        with attempt_not_sent():
            permit = await self.limits.acquire(name, tokens)
        try:
            response = await self.wrapped.request(request)
        except ModelError as exc:
            self.limits.observe(name, exc.rate_limit)
            if exc.rate_limited:
                self.limits.pause(name, _pause_for(exc, self.limits, name))
                permit.refund()  # a rejected call used no tokens
            elif exc.usage is not None:
                permit.settle(exc.usage.total_tokens)
            raise
        self.limits.observe(name, response.rate_limit)
        permit.settle(response.usage.total_tokens)
        return response


def _pause_for(exc: ModelError, limits: RateLimits, model: str) -> float:
    """How long a 429 holds the model: Retry-After, else the reset, else one slot."""
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return exc.retry_after
    info = exc.rate_limit
    if info is not None:
        resets = [
            r
            for rem, r in (
                (info.remaining_requests, info.reset_requests),
                (info.remaining_tokens, info.reset_tokens),
            )
            if rem == 0 and r is not None
        ]
        if resets:
            return max(resets)
    rpm, _ = limits.limits(model)
    return limits.period / rpm if rpm else 1.0


def pace_ladder(ladder: Ladder, limits: RateLimits) -> Ladder:
    """The same ladder with every model paced by `limits`, under its retries if it has
    them (so retries are paced too). Models shared between tiers stay shared."""
    done: dict[int, Model] = {}

    def paced(model: Model) -> Model:
        if id(model) not in done:
            if isinstance(model, RetryingModel):
                done[id(model)] = RetryingModel(
                    PacedModel(model.wrapped, limits),
                    max_attempts=model.max_attempts,
                    base_delay=model.base_delay,
                    max_delay=model.max_delay,
                    rate_limit_patience=model.rate_limit_patience,
                    breaker=model.breaker,
                )
            else:
                done[id(model)] = PacedModel(model, limits)
        return done[id(model)]

    models = {tier: paced(m) for tier, m in ladder.items()}
    source = getattr(ladder, "source", "") or "models"
    return Ladder(models, f"{source}; paced at {limits!r}")
