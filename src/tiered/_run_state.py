"""One run's settings and mutable state, passed to each phase; never shared between runs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import anyio

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._escalation import Escalate, EscalationPolicy
from tiered._estimate import PlanBudget
from tiered._journal import Journal
from tiered._ledger import Ledger
from tiered._limits import Limits
from tiered._planner import Planner
from tiered._recorder import RunRecorder
from tiered._result import RunStatus
from tiered._routing import RouteDecision, Router
from tiered._stream import EventChannel
from tiered._verify import AgentCheck, Check
from tiered.models import Ladder

__all__ = ("AnswerCheck", "AttemptStats", "RunConfig", "RunState", "Slots")


class Slots:
    """The run's concurrency slots, shared by every plan level (sub-plans included).

    Like `anyio.CapacityLimiter`, but a free slot is taken without a checkpoint: the
    attempt it guards awaits at once anyway, and a checkpoint per attempt costs an
    event-loop turn.
    """

    __slots__ = ("_waiters", "free")

    def __init__(self, total: int) -> None:
        self.free = total
        self._waiters: deque[anyio.Event] = deque()

    def take(self) -> bool:
        """Take a free slot at once if there is one (no waiter goes first); False if not."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait until a slot is handed over (after `take` said no)."""
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise

    async def __aenter__(self) -> None:
        if not self.take():
            await self.wait()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Give the slot back: straight to the next waiter, if any."""
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self.free += 1


AnswerCheck = Callable[[Any, Mapping[str, Any]], "str | None"]
"""`(final_answer, outputs by subtask id) -> None` to accept, or what is wrong with it."""


class AttemptStats(Protocol):
    """Learns from every finished attempt (e.g. a per-agent, per-tier success estimate)."""

    def record(
        self,
        agent: str,
        tier: Tier,
        succeeded: bool,
        category: str | None = None,
        *,
        after: Tier | None = None,
        cost: Decimal | None = None,
    ) -> None:
        """Count one attempt of `agent` on `tier`; `after` is the tier whose failure it
        follows (an escalation or a retry with feedback), None for a first try; `cost`
        is the attempt's dollars."""
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
    plan_budget: PlanBudget | None = None
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
    limiter: Slots
    channel: EventChannel | None = None
    journal: Journal | None = None
    model_limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)
    decisions: dict[RouteDecision, RouteDecision] = field(default_factory=dict)
    """Each distinct route decision once: subtasks routed alike share one object."""
    routes: dict[tuple[Any, ...], tuple[RouteDecision, int, str]] = field(default_factory=dict)
    """The rule router's decisions by `rule_key`: (decision, the estimate it holds
    under, the attempt's reason), so subtasks alike are routed once."""
    stop_reason: str | None = None
    stop_status: RunStatus | None = None
    fatal: BaseException | None = None
    """Misuse or a bug in user code: the run ends with it instead of escalating."""
    scope: anyio.CancelScope | None = None
    """The execution's cancel scope, cancelled when `fatal` is set."""
    escalate_tools: tuple[Escalate, ...] = ()
    """The extra tools of an agent that may escalate: the config's `escalate`, built once."""

    def __post_init__(self) -> None:
        self.escalate_tools = (self.config.escalate,)

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
        limits = self.config.limits
        if limits.per_model is None:
            return None
        n = limits.model_limit(name)
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
