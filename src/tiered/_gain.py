"""Gain-aware escalation: move up a tier only where that buys success, and say why.

Two kinds of evidence answer "is the next tier better for this agent?": what the next
tier does on the failures of this one (`RoutingStats`' `after:<tier>` cells, learned
from earlier escalations), or failing that, each tier's calibrated or learned success
(`Evidence`). Where the next tier is no better, another try on the same tier with the
failure as feedback, or giving up, is the cheaper bet. `gain_aware_policy` is the
`DefaultPolicy` with these rules in front of its "move one tier up" rule: what an
`Orchestrator` uses when given stats or a `CalibratedRouter` and no policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiered._agent import Agent
from tiered._calibrated import CalibratedRouter, Evidence
from tiered._calibration import ordered_tiers
from tiered._catalog import Tier
from tiered._escalation import Action, DefaultPolicy, Failure, PolicyState, Rule
from tiered._learning import Estimate, RoutingStats
from tiered.models import Model

__all__ = ("evidence_for", "gain_aware_policy", "gain_aware_rules", "should_escalate")


def _rescue(evidence: Evidence, agent: str, tier: Tier, after: Tier) -> Estimate | None:
    stats = evidence.stats
    if stats is None:
        return None
    return stats.estimate(agent, tier, after=after)


def should_escalate(
    evidence: Evidence,
    agent: Agent[Any],
    models: Mapping[Tier, Model],
    from_tier: Tier,
    to_tier: Tier,
    *,
    category: str | None = None,
    margin: float = 0.05,
    min_cases: int = 10,
    min_rescue: float = 0.10,
) -> tuple[bool, str]:
    """Whether moving `agent` from `from_tier` to `to_tier` buys success, and why.

    Learned rescues (how often `to_tier` got right what `from_tier` got wrong) decide
    where there are `min_cases` of them: escalate if they beat `min_rescue`. Otherwise the
    tiers' own success rates decide: escalate if `to_tier`'s beats `from_tier`'s by
    `margin`. True (escalate) where neither has the evidence: with no data the policy
    behaves as before.
    """
    rescued = _rescue(evidence, agent.name, to_tier, from_tier)
    if rescued is not None and rescued.n >= min_cases:
        said = (
            f"{to_tier.value} got right {100 * rescued.mean:.0f}% of what {from_tier.value} "
            f"got wrong for {agent.name} ({rescued.n} escalations)"
        )
        if rescued.mean > min_rescue:
            return True, f"{said}: escalate"
        return False, f"{said}: under {100 * min_rescue:.0f}%, escalating buys nothing"
    views = {v.tier: v for v in evidence.views(agent, models, category)}
    here, there = views.get(from_tier), views.get(to_tier)
    if here is None or there is None or min(here.estimate.n, there.estimate.n) < min_cases:
        return True, f"no calibration for {from_tier.value}->{to_tier.value}: escalate as usual"
    a, b = here.estimate.mean, there.estimate.mean
    said = f"{to_tier.value} {100 * b:.0f}% vs {from_tier.value} {100 * a:.0f}% for {agent.name}"
    if b > a + margin:
        return True, f"{said}: escalating buys {100 * (b - a):.0f} points"
    return False, f"{said}: under the {100 * margin:.0f}-point margin, escalating buys nothing"


def _next_tier(state: PolicyState, tier: Tier) -> Tier | None:
    ladder = getattr(state, "ladder", None)
    if ladder is not None and hasattr(ladder, "above"):
        above: Tier | None = ladder.above(tier)
        return above
    order = ordered_tiers(ladder or [Tier.NANO, Tier.MINI, Tier.FLAGSHIP])
    i = order.index(tier) if tier in order else len(order)
    return order[i + 1] if i + 1 < len(order) else None


def gain_aware_rules(
    evidence: Evidence,
    *,
    margin: float = 0.05,
    min_cases: int = 10,
    min_rescue: float = 0.10,
    max_feedback_retries: int = 1,
) -> list[Rule]:
    """Rules for `DefaultPolicy`, placed before its "move one tier up" rule.

    Where the next tier is no better for this agent (`should_escalate`), retry on the
    same tier with the failure as feedback (up to `max_feedback_retries`, and only while
    such retries are not learned to fail), then give up instead of paying for a second
    failure. Without evidence (or without `PolicyState.agent` / `.ladder`) no rule
    matches and the policy escalates as before.
    """

    def verdict(failure: Failure, state: PolicyState) -> tuple[bool, str] | None:
        """(escalate?, why) where there is a next tier and an agent, else None."""
        agent = getattr(state, "agent", None)
        ladder = getattr(state, "ladder", None)
        up = _next_tier(state, failure.tier)
        if not isinstance(agent, Agent) or ladder is None or up is None:
            return None
        return should_escalate(
            evidence,
            agent,
            ladder,
            failure.tier,
            up,
            margin=margin,
            min_cases=min_cases,
            min_rescue=min_rescue,
        )

    def no_gain(failure: Failure, state: PolicyState) -> bool:
        said = verdict(failure, state)
        return said is not None and not said[0]

    def retry_helps(failure: Failure, state: PolicyState) -> bool:
        tried = sum(1 for a in state.attempts if a.tier == failure.tier) - 1
        if tried >= max_feedback_retries:
            return False
        agent = getattr(state, "agent", None)
        name = agent.name if isinstance(agent, Agent) else ""
        again = _rescue(evidence, name, failure.tier, failure.tier)
        return again is None or again.n < min_cases or again.mean > min_rescue

    def explain(failure: Failure, state: PolicyState, then: str) -> str:
        said = verdict(failure, state)
        return f"{said[1] if said else 'no gain'}; {then}"

    return [
        Rule(
            name="gain_retry",
            when=lambda f, s: no_gain(f, s) and retry_helps(f, s),
            action=Action.RETRY,
            why="the next tier is no better for this agent: retry on this tier with the "
            "failure as feedback",
            explain=lambda f, s: explain(f, s, "retry on this tier with the failure as feedback"),
        ),
        Rule(
            name="gain_give_up",
            when=no_gain,
            action=Action.GIVE_UP,
            why="the next tier is no better for this agent and a retry would not help: "
            "escalating would buy a second failure",
            explain=lambda f, s: explain(
                f, s, "give up: a retry here would not help, and escalating buys a second failure"
            ),
        ),
    ]


def evidence_for(router: object, stats: object) -> Evidence | None:
    """The evidence an orchestrator holds: a `CalibratedRouter`'s, and/or `RoutingStats`."""
    learned = stats if isinstance(stats, RoutingStats) else None
    if isinstance(router, CalibratedRouter):
        found = router.evidence
        if learned is not None and found.stats is None:
            found = Evidence(
                found.calibration, learned, calibration_weight=found.calibration_weight
            )
        return found
    return Evidence(stats=learned) if learned is not None else None


def gain_aware_policy(
    evidence: Evidence | None,
    *,
    margin: float = 0.05,
    min_cases: int = 10,
    min_rescue: float = 0.10,
    **policy: Any,
) -> DefaultPolicy:
    """`DefaultPolicy(**policy)` with `gain_aware_rules(evidence)` before "escalate"; the
    plain `DefaultPolicy` when `evidence` is None."""
    if evidence is None:
        return DefaultPolicy(**policy)
    rules = DefaultPolicy.default_rules(max_retries=policy.get("max_retries", 1))
    at = next((i for i, r in enumerate(rules) if r.name == "escalate"), len(rules))
    gain = gain_aware_rules(evidence, margin=margin, min_cases=min_cases, min_rescue=min_rescue)
    return DefaultPolicy(rules=[*rules[:at], *gain, *rules[at:]], **policy)
