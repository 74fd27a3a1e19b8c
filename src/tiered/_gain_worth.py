"""What one escalation step buys: how often the next tier rescues this one's failures,
what a success is worth, and whether the step is priced out (`should_escalate`).

The evidence half of gain-aware escalation; `tiered._gain` turns it into policy rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tiered._agent import Agent
from tiered._calibrated import Evidence, success_worth
from tiered._calibration import ordered_tiers
from tiered._cascade import money as _money
from tiered._catalog import Tier
from tiered._errors import UserError
from tiered._escalation import Attempt
from tiered._learning import Estimate
from tiered.models import Model

__all__ = ("priced_out", "rescue", "should_escalate", "success_value")


def rescue(
    evidence: Evidence,
    agent: Agent[Any],
    models: Mapping[Tier, Model],
    tier: Tier,
    after: Tier,
    category: str | None,
) -> Estimate | None:
    return evidence.rescue(agent, models, tier, after, category)


def repriced(models: Mapping[Tier, Model], tier: Tier, attempt: Attempt | None) -> Decimal | None:
    """The failed attempt's tokens at `tier`'s prices: what the next try would cost."""
    model = models.get(tier)
    if attempt is None or model is None:
        return None
    try:
        return model.spec.cost(attempt.usage)
    except UserError:  # no price known for this model
        return None


def success_value(
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
    cost = repriced(models, top, attempt) if top is not None else None
    best = max((v.estimate.mean for v in views), default=0.0)
    if cost is None or best <= 0:
        return None
    return Decimal(str(factor)) * cost / Decimal(str(best))


def priced_out(
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
    cost = cost if cost is not None else repriced(models, tier, attempt)
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
    worth = success_value(evidence, agent, models, category, value_factor, attempt, min_cases)
    context = (category, attempt)
    rescued = rescue(evidence, agent, models, to_tier, from_tier, category)
    if rescued is not None and rescued.n >= min_cases:
        said = (
            f"{to_tier.value} got right {100 * rescued.mean:.0f}% of what {from_tier.value} "
            f"got wrong for {agent.name} ({rescued.n} escalations)"
        )
        if rescued.mean <= min_rescue:
            return False, f"{said}: under {100 * min_rescue:.0f}%, escalating buys nothing"
        dear = priced_out(evidence, agent, models, to_tier, from_tier, rescued.mean, worth, context)
        if dear is not None:
            return False, f"{said}: {dear}"
        return True, f"{said}: escalate"
    if value_factor is not None and explore:  # a rescue is only learned by escalating
        seen = rescued.n if rescued is not None else 0
        said = f"{to_tier.value} has rescued {seen} of {min_cases} {from_tier.value} failures"
        dear = priced_out(evidence, agent, models, to_tier, from_tier, 1.0, worth, context)
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
