"""One run's settings and mutable state, passed to each phase; never shared between runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._escalation import Escalate, EscalationPolicy
from tiered._journal import Journal
from tiered._ledger import Ledger
from tiered._limits import Limits
from tiered._planner import Planner
from tiered._recorder import RunRecorder
from tiered._result import RunStatus
from tiered._routing import Router
from tiered._stream import EventChannel
from tiered._verify import AgentCheck, Check
from tiered.models import Ladder

__all__ = ("AnswerCheck", "AttemptStats", "RunConfig", "RunState")

AnswerCheck = Callable[[Any, Mapping[str, Any]], "str | None"]
"""`(final_answer, outputs by subtask id) -> None` to accept, or what is wrong with it."""


class AttemptStats(Protocol):
    """Learns from every finished attempt (e.g. a per-agent, per-tier success estimate)."""

    def record(self, agent: str, tier: Tier, succeeded: bool, category: str | None = None) -> None:
        """Count one attempt of `agent` on `tier`."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """What an `Orchestrator` was built with: the same for each of its runs."""

    executors: Mapping[str, Agent[Any, Any]]
    planner: Planner
    router: Router
    policy: EscalationPolicy
    limits: Limits
    verify: Mapping[str, Check | AgentCheck]
    answer_check: AnswerCheck | None = None
    stats: AttemptStats | None = None
    escalate: Escalate = field(default_factory=Escalate)


@dataclass(slots=True, eq=False, kw_only=True)
class RunState:
    """Mutable state of one run."""

    config: RunConfig
    goal: str
    deps: Any
    ladder: Ladder
    ledger: Ledger
    recorder: RunRecorder
    limiter: anyio.CapacityLimiter
    channel: EventChannel | None = None
    journal: Journal | None = None
    model_limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)
    stop_reason: str | None = None
    stop_status: RunStatus | None = None
    fatal: BaseException | None = None
    """Misuse or a bug in user code: the run ends with it instead of escalating."""
    scope: anyio.CancelScope | None = None
    """The execution's cancel scope, cancelled when `fatal` is set."""

    def stop(self, status: RunStatus, reason: str) -> None:
        """Stop starting new work (budget, deadline); the first reason wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_status = status

    def fail_fast(self, exc: BaseException) -> None:
        """End the run with `exc`: stop everything still running."""
        if self.fatal is None:
            self.fatal = exc
        if self.scope is not None:
            self.scope.cancel()

    def model_limiter(self, name: str) -> anyio.CapacityLimiter | None:
        """The in-flight cap shared by every call to model `name`, if one is set."""
        n = self.config.limits.model_limit(name)
        if n is None:
            return None
        limiter = self.model_limiters.get(name)
        if limiter is None:
            limiter = self.model_limiters[name] = anyio.CapacityLimiter(n)
        return limiter

    async def wait_for_room(self) -> None:
        """Backpressure: wait while a stream's consumer is behind."""
        if self.channel is not None:
            await self.channel.wait_for_room()
