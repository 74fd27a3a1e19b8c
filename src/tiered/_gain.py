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

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tiered._agent import Agent
from tiered._calibrated import CalibratedRouter, Evidence, _money, success_worth
from tiered._calibration import ordered_tiers
from tiered._catalog import Tier
from tiered._errors import UserError
from tiered._escalation import Action, Attempt, DefaultPolicy, Failure, PolicyState, Rule
from tiered._learning import Estimate, RoutingStats
from tiered._routing import Router, RuleRouter
from tiered.models import Model

__all__ = (
    "default_router",
    "evidence_for",
    "gain_aware_policy",
    "gain_aware_rules",
    "should_escalate",
)


def _rescue(
    evidence: Evidence,
    agent: Agent[Any],
    models: Mapping[Tier, Model],
    tier: Tier,
    after: Tier,
    category: str | None,
) -> Estimate | None:
    return evidence.rescue(agent, models, tier, after, category)


def _repriced(models: Mapping[Tier, Model], tier: Tier, attempt: Attempt | None) -> Decimal | None:
    """The failed attempt's tokens at `tier`'s prices: what the next try would cost."""
    model = models.get(tier)
    if attempt is None or model is None:
        return None
    try:
        return model.spec.cost(attempt.usage)
    except UserError:  # no price known for this model
        return None


def _worth(
    evidence: Evidence,
    agent: Agent[Any],
    models: Mapping[Tier, Model],
    category: str | None,
    factor: float | None,
    attempt: Attempt | None,
    min_cases: int,
) -> Decimal | None:
    """What a success of `agent` is worth (see `success_worth`): from the top rung's own
    record when measured, else its price on the failed attempt's tokens over the best
    measured success rate; None where neither is known or `factor` is None."""
    if factor is None:
        return None
    views = [v for v in evidence.views(agent, models, category) if v.estimate.n >= min_cases]
    top = ordered_tiers(models)[-1] if models else None
    if views and views[-1].tier == top and views[-1].cost is not None:
        return success_worth(views, factor)
    cost = _repriced(models, top, attempt) if top is not None else None
    best = max((v.estimate.mean for v in views), default=0.0)
    if cost is None or best <= 0:
        return None
    return Decimal(str(factor)) * cost / Decimal(str(best))


def _priced_out(
    evidence: Evidence,
    agent: Agent[Any],
    models: Mapping[Tier, Model],
    tier: Tier,
    after: Tier,
    rate: float,
    worth: Decimal | None,
    context: tuple[str | None, Attempt | None],
) -> str | None:
    """Why paying for another attempt on `tier` at success `rate` is not worth it, or None."""
    category, attempt = context
    cost = evidence.attempt_cost(agent.name, tier, category, after=after)
    cost = cost if cost is not None else _repriced(models, tier, attempt)
    if worth is None or cost is None:
        return None
    if rate <= 0:
        return f"a success is worth {_money(worth)} and this buys none"
    per = cost / Decimal(str(rate))
    if per <= worth:
        return None
    return f"{_money(per)} per success bought, over the {_money(worth)} a success is worth"


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
    value_factor: float | None = 1.0,
    attempt: Attempt | None = None,
    explore: bool = True,
) -> tuple[bool, str]:
    """Whether moving `agent` from `from_tier` to `to_tier` buys success, and why.

    Learned rescues (how often `to_tier` got right what `from_tier` got wrong) decide
    where there are `min_cases` of them: escalate if they beat `min_rescue` and, with
    `value_factor` and known prices, if a success bought that way costs no more than it
    is worth (`value_factor` x the top tier's dollars per success). Until then, with
    `value_factor`, escalate (that is how the rescue is learned; the tiers' overall rates
    cannot show it, e.g. where the verifier's false alarms are what the next tier fixes)
    unless even a sure rescue is dear; without it, the tiers' own rates decide: escalate
    if `to_tier`'s beats `from_tier`'s by `margin` (so too with `explore=False`, once
    the policy has sent its share of escalations to learn from). True (escalate) where
    there is no evidence: the policy behaves as before.
    """
    worth = _worth(evidence, agent, models, category, value_factor, attempt, min_cases)
    context = (category, attempt)
    rescued = _rescue(evidence, agent, models, to_tier, from_tier, category)
    if rescued is not None and rescued.n >= min_cases:
        said = (
            f"{to_tier.value} got right {100 * rescued.mean:.0f}% of what {from_tier.value} "
            f"got wrong for {agent.name} ({rescued.n} escalations)"
        )
        if rescued.mean <= min_rescue:
            return False, f"{said}: under {100 * min_rescue:.0f}%, escalating buys nothing"
        dear = _priced_out(
            evidence, agent, models, to_tier, from_tier, rescued.mean, worth, context
        )
        if dear is not None:
            return False, f"{said}: {dear}"
        return True, f"{said}: escalate"
    if value_factor is not None and explore:  # a rescue is only learned by escalating
        seen = rescued.n if rescued is not None else 0
        said = f"{to_tier.value} has rescued {seen} of {min_cases} {from_tier.value} failures"
        dear = _priced_out(evidence, agent, models, to_tier, from_tier, 1.0, worth, context)
        if dear is not None:
            return False, f"{said}, and even a sure rescue is dear: {dear}"
        return True, f"{said} for {agent.name}: escalate, and learn what it buys"
    views = {v.tier: v for v in evidence.views(agent, models, category)}
    here, there = views.get(from_tier), views.get(to_tier)
    if here is None or there is None or min(here.estimate.n, there.estimate.n) < min_cases:
        return True, f"no calibration for {from_tier.value}->{to_tier.value}: escalate as usual"
    a, b = here.estimate.mean, there.estimate.mean
    said = f"{to_tier.value} {100 * b:.0f}% vs {from_tier.value} {100 * a:.0f}% for {agent.name}"
    if b <= a + margin:
        return False, f"{said}: under the {100 * margin:.0f}-point margin, escalating buys nothing"
    return True, f"{said}: escalating buys {100 * (b - a):.0f} points"


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
        found = _rescue(evidence, agent, state.ladder, to, tier, category_of(state))
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
        again = _rescue(evidence, agent, ladder, failure.tier, failure.tier, category)
        if again is None or again.n < min_cases:
            k = key(state, failure.tier, failure.tier)
            learning[k] = learning.get(k, 0) + 1
            return learning[k] <= min_cases  # a burst retries only as many as it learns from
        if again.mean <= min_rescue:
            return False
        worth = _worth(evidence, agent, ladder, category, value_factor, last(state), min_cases)
        context = (category, last(state))
        tier = failure.tier
        dear = _priced_out(evidence, agent, ladder, tier, tier, again.mean, worth, context)
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
