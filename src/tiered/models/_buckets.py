"""The token buckets behind `RateLimits`: one per limit (requests or tokens per minute)
of one model, FIFO by marks, and a model's `Pace` (its buckets and its 429 pause)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio

__all__ = ("Bucket", "Pace")


@dataclass(slots=True)
class Bucket:
    """`limit` per `period`, refilled continuously. The burst is the limit less what
    `headroom` seconds refill, so requests the network delays cannot pile up at a
    provider whose own bucket sat full meanwhile.

    FIFO by marks: `issued` counts every token handed out, `supply` every token that
    ever became available; the caller holding mark M may go once supply reaches M.
    Unused supply is capped at `capacity` beyond what has actually *gone* (`granted`),
    not beyond what is queued: after a stall (a busy event loop) the queue may send one
    burst, never every token the stall accrued at once, which the provider's own bucket,
    full and capped while idle, would refuse.
    """

    limit: float
    period: float
    headroom: float
    capacity: float = 0.0
    supply: float = 0.0
    issued: float = 0.0
    granted: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.capacity = self._capacity(self.limit)
        self.supply = self.capacity

    def _capacity(self, limit: float) -> float:
        return max(limit - limit / self.period * self.headroom, min(limit, 1.0))

    @property
    def rate(self) -> float:
        return self.limit / self.period

    @property
    def level(self) -> float:
        """Tokens available now; negative while callers queue."""
        return self.supply - self.issued

    def refill(self, now: float) -> None:
        accrued = self.supply + (now - self.stamp) * self.rate
        self.supply = min(accrued, self.granted + self.capacity)
        self.stamp = now

    def grant(self, mark: float) -> None:
        """The caller holding `mark` has gone (or left the queue)."""
        self.granted = max(self.granted, mark)

    def take(self, amount: float, now: float) -> float:
        """Hand out `amount` tokens; the mark to wait for."""
        self.refill(now)
        self.issued += min(amount, self.capacity)
        return self.issued

    def wait_for(self, mark: float, now: float) -> float:
        """Seconds until `mark` is covered at the refill rate (0 when it is)."""
        self.refill(now)
        return max(mark - self.supply, 0.0) / self.rate

    def give_back(self, amount: float) -> None:
        self.supply = min(self.supply + amount, self.granted + self.capacity)

    def lower_to(self, level: float) -> None:
        self.supply = min(self.supply, self.granted + level)

    def resize(self, limit: float) -> None:
        if limit > 0 and limit != self.limit:
            self.limit = limit
            self.capacity = self._capacity(limit)
            self.lower_to(self.capacity)


@dataclass(slots=True)
class Pace:
    """One model's buckets, its pause after a 429, and the event queued callers wait on."""

    rpm: int | None
    tpm: int | None
    requests: Bucket | None
    tokens: Bucket | None
    blocked_until: float = 0.0
    changed: anyio.Event | None = None
    """Set (and replaced) when tokens come back, so queued callers look again."""

    def notify(self) -> None:
        """Wake the queued callers (tokens came back)."""
        if self.changed is not None:
            self.changed.set()
            self.changed = None
