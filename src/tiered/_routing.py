"""Routing: pick the cheapest tier that can do a subtask, and say why.

`RuleRouter` applies the practitioners' rules listed in the README ("Routing and
escalation are explainable"); `ClassifierRouter` asks a nano agent and falls back to
the rules when the classifier is unsure or fails. Both read the tier order from the
run's `Ladder`, so two-rung and four-rung ladders route the same way.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from tiered._agent import Agent
from tiered._catalog import ModelSpec, Tier
from tiered._errors import BudgetExceeded, RunError
from tiered._ledger import Ledger
from tiered._plan import Stakes, Subtask
from tiered.models import Ladder, Model

__all__ = (
    "LONG_INPUT_TOKENS",
    "ClassifierRouter",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "RuleRouter",
    "decide_with_limit",
    "estimate_tokens",
    "rule_key",
)

LONG_INPUT_TOKENS = 272_000
"""Inputs above this go to the flagship (and cross the long-context price break)."""


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (four characters a token) for routing, not for billing."""
    return len(text) // 4 + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteRequest:
    """What a router sees of one subtask."""

    subtask: Subtask
    agent: Agent[Any]
    estimated_input_tokens: int
    """Instructions, arguments and dependency outputs, estimated."""
    ladder: Ladder
    """The run's rungs, cheapest first, and the model on each."""

    @property
    def specs(self) -> Mapping[Tier, ModelSpec]:
        """The model spec on each rung (context windows, prices)."""
        return self.ladder.specs


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDecision:
    """The tier chosen for a subtask and the reason, in words."""

    tier: Tier
    reason: str
    router: str = "rules"
    gate: float | None = None
    """A confidence gate: a reply on `tier` less sure than this goes one tier up (the
    `CalibratedRouter` sets it where its calibration says that pays)."""


class Router(Protocol):
    """Chooses the starting tier of a subtask."""

    async def route(
        self, request: RouteRequest, *, models: Mapping[Tier, Model], ledger: Ledger
    ) -> RouteDecision:
        """Return the tier to try first, with its reason."""
        ...


def _room(spec: ModelSpec) -> int:
    """The input estimate from which `spec`'s context window is taken to overflow."""
    return spec.context_window - min(spec.max_output_tokens, spec.context_window // 4)


def _fits(spec: ModelSpec, tokens: int) -> bool:
    return tokens < _room(spec)


def _lowest_fitting(request: RouteRequest, start: Tier) -> Tier:
    ladder = request.ladder
    current: Tier | None = start
    while current is not None:
        if _fits(ladder[current].spec, request.estimated_input_tokens):
            return current
        current = ladder.above(current)
    return ladder.top


class RuleRouter:
    """Cheapest tier that fits: the agent's default (or the planner's hint), then the rules.

    Plan-shaped work and inputs over 272K tokens go to the top rung; high stakes go one
    rung up; a rung whose context window the input would overflow is skipped.
    """

    def decide(self, request: RouteRequest) -> RouteDecision:
        """The rule-based decision (synchronous; no model call)."""
        return self._decide(request)[0]

    def _decide(self, request: RouteRequest) -> tuple[RouteDecision, int]:
        """The decision, and the estimate below which the same request (the estimate
        apart) is decided the same: the rules read the estimate only through thresholds."""
        s = request.subtask
        ladder = request.ladder
        if s.plan_shaped:
            reason = f"plan-shaped work goes to the top tier ({ladder.top})"
            return RouteDecision(tier=ladder.top, reason=reason), sys.maxsize
        tokens = request.estimated_input_tokens
        if tokens > LONG_INPUT_TOKENS:
            return RouteDecision(
                tier=ladder.top,
                reason=f"estimated input {tokens:,} tokens is over {LONG_INPUT_TOKENS:,}",
            ), 0
        if s.tier is not None:
            tier, why = s.tier, f"planner's hint {s.tier.value}"
        else:
            tier, why = request.agent.tier, f"agent {request.agent.name}'s default tier"
        ladder.index(tier)  # a tier the ladder lacks is a UserError, not a silent move
        reasons = [why]
        if s.stakes is Stakes.HIGH:
            up = ladder.above(tier)
            if up is not None:
                tier = up
                reasons.append(f"high stakes: one tier up to {tier.value}")
        spec = ladder[tier].spec
        if _fits(spec, tokens):  # the first rung fits: so does any smaller estimate
            limit = min(LONG_INPUT_TOKENS + 1, _room(spec))
            return RouteDecision(tier=tier, reason="; ".join(reasons)), limit
        current: Tier | None = tier
        while current is not None:
            spec = ladder[current].spec
            if _fits(spec, tokens):
                break
            reasons.append(
                f"{current.value} skipped: ~{tokens:,} tokens overflow "
                f"{spec.name}'s {spec.context_window:,} context"
            )
            current = ladder.above(current)
        return RouteDecision(tier=current or ladder.top, reason="; ".join(reasons)), 0

    async def route(
        self, request: RouteRequest, *, models: Mapping[Tier, Model], ledger: Ledger
    ) -> RouteDecision:
        """Apply the rules."""
        return self.decide(request)


def rule_key(subtask: Subtask, agent: Agent[Any]) -> tuple[Any, ...]:
    """What `RuleRouter.decide` reads of a request besides its estimate and ladder."""
    return (agent.name, agent.tier, subtask.tier, subtask.stakes, subtask.plan_shaped)


def decide_with_limit(router: RuleRouter, request: RouteRequest) -> tuple[RouteDecision, int]:
    """`router.decide(request)`, and the estimate below which every request with the same
    `rule_key` on the same ladder is decided the same (0: it depends on the estimate)."""
    return router._decide(request)


class TierChoice(BaseModel):
    """The classifier's answer."""

    tier: Literal["nano", "mini", "flagship"] = Field(description="Cheapest tier that can do it.")
    confidence: float = Field(ge=0, le=1, description="0..1, how sure you are.")
    reason: str = Field(description="One short sentence.")


_CLASSIFIER_INSTRUCTIONS = """\
You route subtasks to the cheapest model tier that can do them well.
- nano: classification, extraction, ranking, routing, short summaries, standard tool calls.
- mini: multi-step tool use, coding, long terminal work, computer use, careful verification.
- flagship: choosing a strategy, decomposing an ambiguous goal, weighing trade-offs,
  high-stakes single calls with no human review.
Do not pick a higher tier just because a task feels hard. Answer with the tier, your
confidence (0..1) and one short reason."""


class ClassifierRouter:
    """Asks a nano agent which tier a subtask needs; falls back to the rules when unsure.

    The hard rules (plan-shaped, over 272K tokens, context overflow) still win.
    """

    def __init__(self, *, min_confidence: float = 0.6, tier: Tier | None = None) -> None:
        self.min_confidence = min_confidence
        self.tier = tier
        """The classifier's tier; None is the ladder's cheapest rung."""
        self.rules = RuleRouter()
        self.agent: Agent[TierChoice] = Agent(
            name="router",
            instructions=_CLASSIFIER_INSTRUCTIONS,
            tier=tier or Tier.NANO,
            output_type=TierChoice,
            max_repairs=1,
            max_turns=3,
        )

    async def route(
        self, request: RouteRequest, *, models: Mapping[Tier, Model], ledger: Ledger
    ) -> RouteDecision:
        """Classify, then keep the rules' hard constraints."""
        ruled = self.rules.decide(request)
        s = request.subtask
        if s.plan_shaped or request.estimated_input_tokens > LONG_INPUT_TOKENS:
            return ruled
        brief = json.dumps(
            {
                "agent": request.agent.name,
                "agent_description": request.agent.description,
                "instructions": s.instructions,
                "stakes": s.stakes.value,
                "estimated_input_tokens": request.estimated_input_tokens,
            }
        )
        try:
            tier = self.tier or request.ladder.bottom
            result = await self.agent.run(brief, models=models, tier=tier, ledger=ledger)
        except BudgetExceeded:
            raise
        except RunError as exc:
            return RouteDecision(
                tier=ruled.tier,
                reason=f"classifier failed ({type(exc).__name__}); rules: {ruled.reason}",
                router="classifier",
            )
        choice = result.output
        if choice.confidence < self.min_confidence:
            return RouteDecision(
                tier=ruled.tier,
                reason=f"classifier unsure ({choice.confidence:.2f}); rules: {ruled.reason}",
                router="classifier",
            )
        tier = Tier(choice.tier)
        ladder = request.ladder
        if tier not in ladder:
            return RouteDecision(
                tier=ruled.tier,
                reason=f"classifier chose {tier.value}, not on this ladder; rules: {ruled.reason}",
                router="classifier",
            )
        floor = _lowest_fitting(request, ladder.bottom)
        if ladder.index(tier) < ladder.index(floor):
            tier = floor  # the context window rule is not negotiable
        return RouteDecision(
            tier=tier,
            reason=f"classifier ({choice.confidence:.2f}): {choice.reason}",
            router="classifier",
        )
