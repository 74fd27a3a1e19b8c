"""Gain-aware escalation: move up a tier only where that buys success, and say why.

Two kinds of evidence answer "is the next tier better for this agent?": what the next
tier does on the failures of this one (`RoutingStats`' `after:<tier>` cells, learned
from earlier escalations), or failing that, each tier's calibrated or learned success
(`Evidence`). Where the next tier is no better, another try on the same tier with the
failure as feedback, or giving up, is the cheaper bet. And a rescue can be real but
dear: with `value_factor` (1 by default) a step is taken only where the success it is
learned to buy costs no more than a success is worth, `value_factor` x the top tier's
dollars per success for this agent (the price of simply running everything there).
`gain_aware_policy` is the `DefaultPolicy` with these rules in front of its "move one
tier up" rule: what an `Orchestrator` uses when given stats or a `CalibratedRouter` and
no policy; `default_router` is the router it uses when given none.
"""

from __future__ import annotations

from typing import Any

from tiered._agent import Agent
from tiered._calibrated import CalibratedRouter, Evidence
from tiered._calibration import ordered_tiers
from tiered._catalog import Tier
from tiered._escalation import Action, Attempt, DefaultPolicy, Failure, PolicyState, Rule
from tiered._gain_worth import priced_out, rescue, should_escalate, success_value
from tiered._learning import RoutingStats
from tiered._routing import Router, RuleRouter

__all__ = (
    "default_router",
    "evidence_for",
    "gain_aware_policy",
    "gain_aware_rules",
    "should_escalate",
)


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
    value_factor: float | None = 1.0,
) -> list[Rule]:
    """Rules for `DefaultPolicy`, placed before its "move one tier up" rule.

    Where the next tier is no better for this agent (`should_escalate`), retry on the
    same tier with the failure as feedback (up to `max_feedback_retries`, and only while
    such retries are not learned to fail), then give up instead of paying for a second
    failure. With `value_factor`, neither step is taken where the success it is learned
    to buy costs more than `value_factor` x the top tier's dollars per success, and a
    rescue not measured yet is learned by escalating (`gain_learn`) up to `min_cases`
    times per (agent, category, tier pair), counted when sent, so a burst of concurrent
    failures does not all go to learning. Without evidence (or without
    `PolicyState.agent` / `.ladder`) no rule matches and the policy escalates as before.
    """

    learning: dict[tuple[str, str | None, str, str], int] = {}
    """Steps sent to learn a rescue, per (agent, category, from, to): outcomes arrive
    later, so a burst of failures must not all be spent learning."""
    memo: dict[str, Any] = {}

    def last(state: PolicyState) -> Attempt | None:
        return state.attempts[-1] if state.attempts else None

    def category_of(state: PolicyState) -> str | None:
        return getattr(getattr(state, "subtask", None), "category", None)

    def key(state: PolicyState, tier: Tier, to: Tier) -> tuple[str, str | None, str, str]:
        agent = getattr(state, "agent", None)
        name = agent.name if isinstance(agent, Agent) else ""
        return name, category_of(state), str(tier.value), str(to.value)

    def unmeasured(state: PolicyState, tier: Tier, to: Tier) -> bool:
        agent = state.agent
        found = rescue(evidence, agent, state.ladder, to, tier, category_of(state))
        return value_factor is not None and (found is None or found.n < min_cases)

    def verdict(failure: Failure, state: PolicyState) -> tuple[bool, str] | None:
        """(escalate?, why) where there is a next tier and an agent, else None; the same
        answer for every rule that asks about this failure."""
        if memo.get("failure") is failure and memo.get("state") is state:
            said: tuple[bool, str] | None = memo["said"]
            return said
        agent = getattr(state, "agent", None)
        ladder = getattr(state, "ladder", None)
        up = _next_tier(state, failure.tier)
        said = None
        if isinstance(agent, Agent) and ladder is not None and up is not None:
            said = should_escalate(
                evidence,
                agent,
                ladder,
                failure.tier,
                up,
                category=category_of(state),
                margin=margin,
                min_cases=min_cases,
                min_rescue=min_rescue,
                value_factor=value_factor,
                attempt=last(state),
                explore=learning.get(key(state, failure.tier, up), 0) < min_cases,
            )
        memo.update(failure=failure, state=state, said=said)
        return said

    def learn(failure: Failure, state: PolicyState) -> bool:
        said = verdict(failure, state)
        up = _next_tier(state, failure.tier)
        if said is None or not said[0] or up is None or not unmeasured(state, failure.tier, up):
            return False
        k = key(state, failure.tier, up)
        learning[k] = learning.get(k, 0) + 1
        return True

    def no_gain(failure: Failure, state: PolicyState) -> bool:
        said = verdict(failure, state)
        return said is not None and not said[0]

    def retry_helps(failure: Failure, state: PolicyState) -> bool:
        tried = sum(1 for a in state.attempts if a.tier == failure.tier) - 1
        if tried >= max_feedback_retries:
            return False
        agent = getattr(state, "agent", None)
        ladder = getattr(state, "ladder", None)
        if not isinstance(agent, Agent) or ladder is None:
            return True
        category = category_of(state)
        again = rescue(evidence, agent, ladder, failure.tier, failure.tier, category)
        if again is None or again.n < min_cases:
            k = key(state, failure.tier, failure.tier)
            learning[k] = learning.get(k, 0) + 1
            return learning[k] <= min_cases  # a burst retries only as many as it learns from
        if again.mean <= min_rescue:
            return False
        worth = success_value(
            evidence, agent, ladder, category, value_factor, last(state), min_cases
        )
        context = (category, last(state))
        tier = failure.tier
        dear = priced_out(evidence, agent, ladder, tier, tier, again.mean, worth, context)
        return dear is None

    def explain(failure: Failure, state: PolicyState, then: str) -> str:
        said = verdict(failure, state)
        return f"{said[1] if said else 'no gain'}; {then}"

    return [
        Rule(
            name="gain_learn",
            when=learn,
            action=Action.ESCALATE,
            why="what the next tier rescues is not measured yet: escalate and learn it",
            explain=lambda f, s: explain(f, s, "move one tier up"),
        ),
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
    value_factor: float | None = 1.0,
    **policy: Any,
) -> DefaultPolicy:
    """`DefaultPolicy(**policy)` with `gain_aware_rules(evidence)` before "escalate"; the
    plain `DefaultPolicy` when `evidence` is None."""
    if evidence is None:
        return DefaultPolicy(**policy)
    rules = DefaultPolicy.default_rules(max_retries=policy.get("max_retries", 1))
    at = next((i for i, r in enumerate(rules) if r.name == "escalate"), len(rules))
    gain = gain_aware_rules(
        evidence,
        margin=margin,
        min_cases=min_cases,
        min_rescue=min_rescue,
        value_factor=value_factor,
    )
    return DefaultPolicy(rules=[*rules[:at], *gain, *rules[at:]], **policy)


def default_router(router: Router | None, stats: object) -> Router:
    """The router an `Orchestrator` uses: the one given; else, over learned `RoutingStats`,
    a `CalibratedRouter` that weighs price (`value_factor=1`) and keeps to the rules until
    two tiers are measured; else the rules."""
    if router is not None:
        return router
    if isinstance(stats, RoutingStats):
        return CalibratedRouter(Evidence(stats=stats), value_factor=1.0)
    return RuleRouter()
