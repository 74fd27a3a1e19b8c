"""Routing and escalation from measured success: `CalibratedRouter` and gain-aware rules.

The router reads `Evidence`: the calibration `tiered eval` wrote, pooled with what
`RoutingStats` learned online. It starts each subtask on the tier with the lowest
expected cost per success, counting the escalations that follow a failure the
framework can see, under a success floor. The gain-aware escalation rules that read
the same evidence are in `_gain`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from tiered._agent import Agent
from tiered._calibration import Calibration, TierCalibration, ordered_tiers
from tiered._cascade import (
    Start,
    TierView,
    cascade,
    conditional_gain,
    money,
    success_worth,
    worth_cascade,
)
from tiered._catalog import Tier
from tiered._learning import Estimate, RoutingStats, wilson_interval
from tiered._ledger import Ledger
from tiered._routing import LONG_INPUT_TOKENS, RouteDecision, Router, RouteRequest, RuleRouter
from tiered.models import Model

__all__ = ("CalibratedRouter", "Evidence", "TierView", "conditional_gain", "success_worth")


class Evidence:
    """Calibration pooled with online stats; the calibration counts as at most
    `calibration_weight` observations, so fresh outcomes can outvote it."""

    def __init__(
        self,
        calibration: Calibration | str | os.PathLike[str] | None = None,
        stats: RoutingStats | None = None,
        *,
        calibration_weight: float = 30.0,
    ) -> None:
        if calibration is not None and not isinstance(calibration, Calibration):
            calibration = Calibration.load(calibration)
        self.calibration = calibration
        self.stats = stats
        self.calibration_weight = calibration_weight

    def views(
        self, agent: Agent[Any], models: Mapping[Tier, Model], category: str | None = None
    ) -> list[TierView]:
        """Every tier of `models` with some evidence, cheapest first."""
        entry = self.calibration.lookup(agent, models) if self.calibration else None
        measured = entry.for_category(category) if entry else {}
        use_equivalent = bool(measured) and all(c.cost_per_case == 0 for c in measured.values())
        out = []
        calibrated = ordered_tiers(Tier(t) for t in measured)
        above = dict(itertools.pairwise(calibrated))
        for tier in ordered_tiers(models):
            cal = measured.get(str(tier.value))
            view = self._view(agent.name, tier, category, cal, use_equivalent, above.get(tier))
            if view is not None:
                out.append(view)
        return out

    def _view(
        self,
        agent: str,
        tier: Tier,
        category: str | None,
        cal: TierCalibration | None,
        use_equivalent: bool,
        up: Tier | None = None,
    ) -> TierView | None:
        """`up`: the next tier calibrated, where a confidence gate's replies went."""
        learned = self.stats.estimate(agent, tier, category) if self.stats else None
        if learned is not None and learned.n == 0:
            learned = None
        if cal is None and learned is None:
            return None
        successes = weight = 0.0
        n = 0
        if cal is not None and cal.n:
            scale = min(1.0, self.calibration_weight / cal.n) if learned else 1.0
            successes, weight, n = cal.successes * scale, cal.n * scale, cal.n
        if learned is not None:
            successes += learned.mean * (learned.weight + 2) - 1  # back to (forgotten) counts
            weight += learned.weight
            n += learned.n
        low, high = wilson_interval(successes, weight)
        mean = successes / weight if weight else 0.5
        estimate = Estimate(mean=mean, low=low, high=high, n=n, weight=weight)
        detected = cal.detected_rate if cal is not None else 1 - mean
        cost = None
        if cal is not None:
            cost = cal.equivalent_cost_per_case if use_equivalent else cal.cost_per_case
        elif self.stats is not None:
            cost = self.attempt_cost(agent, tier, category)
        gates = tuple(cal.gates()) if cal is not None and up is not None else ()
        return TierView(
            tier=tier,
            estimate=estimate,
            detected_rate=detected,
            cost=cost,
            gates=gates,
            gates_to=up if gates else None,
        )

    def rescue(
        self,
        agent: Agent[Any],
        models: Mapping[Tier, Model],
        tier: Tier,
        after: Tier,
        category: str | None = None,
    ) -> Estimate | None:
        """How often `tier` got right what `after` got wrong, or None: learned escalations
        pooled with the calibration's same-case record when `after` is the rung below."""
        learned = (
            self.stats.estimate(agent.name, tier, category, after=after) if self.stats else None
        )
        if learned is not None and learned.n == 0:
            learned = None
        cal = None
        order = ordered_tiers(models)
        below = order.index(tier) - 1 if tier in order else -1
        if self.calibration is not None and below >= 0 and order[below] == after:
            entry = self.calibration.lookup(agent, models)
            found = entry.for_category(category).get(str(tier.value)) if entry else None
            cal = found if found is not None and found.after_failures else None
        if cal is None:
            return learned
        successes, weight = float(cal.rescued), float(cal.after_failures)
        if learned is not None:
            scale = min(1.0, self.calibration_weight / weight)
            successes, weight = successes * scale, weight * scale
            successes += learned.mean * (learned.weight + 2) - 1
            weight += learned.weight
        low, high = wilson_interval(successes, weight)
        n = cal.after_failures + (learned.n if learned is not None else 0)
        mean = successes / weight if weight else 0.5
        return Estimate(mean=mean, low=low, high=high, n=n, weight=weight)

    def attempt_cost(
        self, agent: str, tier: Tier, category: str | None = None, *, after: Tier | None = None
    ) -> Decimal | None:
        """Learned mean dollars of one attempt (the category's, else the agent's), or None."""
        if self.stats is None:
            return None
        for cat, aft in ((category, after), (category, None), (None, None)):
            found = self.stats.mean_cost(agent, tier, cat, after=aft)
            if found is not None:
                return found
        return None


class CalibratedRouter:
    """Starts each subtask on the tier with the lowest expected cost per success.

    Reads `Evidence` (calibration and/or learned stats) per agent, and per category
    when `category(request)` names one; a tier qualifies when its cascade is expected
    to reach `min_success` or to come within `tolerance` of the best start's success
    (e.g. 0.01: "as good as mini, to a point"), else the most successful start wins.
    With `value_factor` (what `Orchestrator` builds over learned stats) the floor gives
    way to price: a success is worth `value_factor` x the top measured tier's dollars
    per success, and the start with the highest expected worth less cost wins. Without
    enough evidence (fewer than `min_cases` on every tier) the rules decide. Where the
    calibration pairs each case's confidence with the next tier's verdict, a start behind
    a confidence gate is weighed too (`confidence_gates=False`: never).
    """

    def __init__(
        self,
        evidence: Evidence | Calibration | str | os.PathLike[str] | None = None,
        *,
        stats: RoutingStats | None = None,
        min_success: float = 0.95,
        min_cases: int = 10,
        margin: float = 0.05,
        tolerance: float = 0.0,
        category: Callable[[RouteRequest], str | None] | None = None,
        fallback: Router | None = None,
        value_factor: float | None = None,
        confidence_gates: bool = True,
    ) -> None:
        self.evidence = evidence if isinstance(evidence, Evidence) else Evidence(evidence, stats)
        self.min_success = min_success
        self.min_cases = min_cases
        self.margin = margin
        self.tolerance = tolerance
        self.category = category or (lambda request: request.subtask.category)
        self.fallback: Router = fallback or RuleRouter()
        self.value_factor = value_factor
        self.confidence_gates = confidence_gates

    async def route(
        self, request: RouteRequest, *, models: Mapping[Tier, Model], ledger: Ledger
    ) -> RouteDecision:
        """The calibrated choice, or the fallback's where evidence is missing."""
        ruled = await self.fallback.route(request, models=models, ledger=ledger)
        s = request.subtask
        if s.plan_shaped or request.estimated_input_tokens > LONG_INPUT_TOKENS or s.tier:
            return ruled  # hard rules and explicit hints win
        category = self.category(request)
        views = [
            v for v in self.measured(request.agent, models, category) if _fits(request, v.tier)
        ]
        if self.value_factor is not None:
            worth = success_worth(views, self.value_factor) if len(views) > 1 else None
            if worth is None:
                return ruled  # one tier measured (the rules' own): nothing to weigh
            agent = request.agent
            return self.choose_by_worth(
                views,
                worth,
                lambda tier, after: _mean(
                    self.evidence.rescue(agent, models, tier, after, category), self.min_cases
                ),
                category,
            )
        if not views:
            return RouteDecision(
                tier=ruled.tier,
                reason=f"no calibration for agent {request.agent.name!r} on these models "
                f"(run `tiered eval`); rules: {ruled.reason}",
                router="calibrated",
            )
        return self.choose(views, category)

    def measured(
        self, agent: Agent[Any], models: Mapping[Tier, Model], category: str | None = None
    ) -> list[TierView]:
        """The tiers with enough evidence to weigh: `min_cases` and a cost."""
        return [
            v
            for v in self.evidence.views(agent, models, category)
            if v.estimate.n >= self.min_cases and v.cost is not None
        ]

    def choose_by_worth(
        self,
        views: list[TierView],
        worth: Decimal,
        rescue: Callable[[Tier, Tier], float | None],
        category: str | None = None,
    ) -> RouteDecision:
        """The start with the highest expected worth of its successes less its cost; a
        start behind a confidence gate is weighed the same way, where calibrated."""
        scored = [(v, *worth_cascade(views, i, worth, rescue)) for i, v in enumerate(views)]
        best = max(scored, key=lambda x: (x[1], -views.index(x[0])))
        gated = [
            (worth * Decimal(str(g.success)) - g.cost, g)
            for g in (self._gated(views) if self.confidence_gates else [])
        ]
        value, top = max(gated, key=lambda x: x[0], default=(best[1], None))
        where = f" [{category}]" if category else ""
        if top is not None and value > best[1]:
            reason = (
                f"{top.describe(chosen=True)}{where}; expected {100 * top.success:.0f}% at "
                f"{money(top.cost)} with escalation, a success worth {money(worth)}"
            )
            return RouteDecision(
                tier=top.view.tier,
                reason=reason,
                router="calibrated",
                gate=top.gate.gate if top.gate is not None else None,
            )
        parts = [f"{best[0].tier.value}: {best[0].estimate.describe()}"]
        parts += [
            f"{v.tier.value} {100 * v.estimate.mean:.0f}%" for v, *_ in scored if v is not best[0]
        ]
        reason = (
            f"{'; '.join(parts)}{where}; expected {100 * best[3]:.0f}% at {money(best[2])} "
            f"with escalation, a success worth {money(worth)}"
        )
        return RouteDecision(tier=best[0].tier, reason=reason, router="calibrated")

    def choose(self, views: list[TierView], category: str | None = None) -> RouteDecision:
        """Pick among `views` (cheapest first, each with a cost) and explain the pick; a
        start may come with a confidence gate, when its calibration has the pairs."""
        scored: list[Start] = []
        for i, v in enumerate(views):
            cost, p = cascade(views, i, self.margin)
            scored.append(Start(v, cost, p))
        if self.confidence_gates:
            scored += self._gated(views)
        top = max(x.success for x in scored)
        ok = [x for x in scored if x.success >= min(self.min_success, top - self.tolerance)]
        reached = any(x.success >= self.min_success for x in scored)
        # the best start is in `ok`; at equal cost per success the cheaper tier, then no gate
        best = min(ok, key=lambda x: (x.per_success, views.index(x.view), x.gate is not None))
        parts = [best.describe(chosen=True)]
        floor_at = f"{100 * min(self.min_success, top - self.tolerance):.0f}%"
        parts += [
            x.describe() + ("" if x in ok else f", under {floor_at}")
            for x in scored
            if x is not best and x.gate is None
        ]
        where = f" [{category}]" if category else ""
        floor = ""
        if not reached:
            floor = f"; no start reaches the {100 * self.min_success:.0f}% floor"
            if self.tolerance:
                floor += f": the cheapest within {100 * self.tolerance:.0f} points of the best"
        return RouteDecision(
            tier=best.view.tier,
            reason="; ".join(parts) + where + floor,
            router="calibrated",
            gate=best.gate.gate if best.gate is not None else None,
        )

    def _gated(self, views: list[TierView]) -> list[Start]:
        """A start per confidence gate measured on at least `min_cases` cases, its
        gated replies priced at the tier they go up to."""
        out = []
        for i, v in enumerate(views[:-1]):
            up = views[i + 1]
            if v.gates_to is not up.tier or up.cost is None:
                continue
            for g in v.gates:
                if g.n >= self.min_cases:
                    cost = (v.cost or Decimal(0)) + Decimal(str(g.escalated)) * up.cost
                    out.append(Start(v, cost, g.expected, g, up.tier))
        return out


def _mean(estimate: Estimate | None, min_cases: int = 10) -> float | None:
    return estimate.mean if estimate is not None and estimate.n >= min_cases else None


def _fits(request: RouteRequest, tier: Tier) -> bool:
    spec = request.specs.get(tier)
    if spec is None:
        return True
    room = spec.context_window - min(spec.max_output_tokens, spec.context_window // 4)
    return request.estimated_input_tokens < room
