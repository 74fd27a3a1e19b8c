"""The rule router, the classifier router and the default escalation policy."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from tiered import (
    Action,
    Agent,
    ClassifierRouter,
    DefaultPolicy,
    Failure,
    FailureKind,
    Ledger,
    ModelRequest,
    PolicyState,
    RouteRequest,
    Rule,
    RuleRouter,
    ScriptedModel,
    Stakes,
    Subtask,
    Tier,
    UserError,
    default_catalog,
)
from tiered._catalog import FREE, ModelSpec
from tiered.models import Ladder, Model, ScriptStep

pytestmark = pytest.mark.anyio


class In(BaseModel):
    text: str


def agent(tier: Tier = Tier.NANO) -> Agent[Any]:
    return Agent(name="worker", instructions="work", tier=tier, input_type=In)


def standard_ladder() -> Ladder:
    cat = default_catalog()
    return Ladder({t: ScriptedModel([], spec=cat.for_tier(t)) for t in Tier})


def request(tokens: int = 100, ladder: Ladder | None = None, **fields: Any) -> RouteRequest:
    s = Subtask(id="s", agent="worker", instructions="do", arguments={"text": "x"}, **fields)
    return RouteRequest(
        subtask=s,
        agent=agent(),
        estimated_input_tokens=tokens,
        ladder=ladder or standard_ladder(),
    )


def test_rules_pick_the_agents_default_tier() -> None:
    d = RuleRouter().decide(request())
    assert d.tier is Tier.NANO
    assert "default tier" in d.reason


def test_rules_send_plan_shaped_work_to_the_flagship() -> None:
    d = RuleRouter().decide(request(plan_shaped=True))
    assert d.tier is Tier.FLAGSHIP
    assert "plan-shaped" in d.reason


def test_rules_send_long_inputs_to_the_flagship() -> None:
    d = RuleRouter().decide(request(tokens=300_000))
    assert d.tier is Tier.FLAGSHIP
    assert "272,000" in d.reason


def test_rules_move_high_stakes_one_tier_up() -> None:
    d = RuleRouter().decide(request(stakes=Stakes.HIGH))
    assert d.tier is Tier.MINI
    assert "high stakes" in d.reason


def test_rules_honour_the_planners_hint() -> None:
    assert RuleRouter().decide(request(tier=Tier.MINI)).tier is Tier.MINI


def test_rules_skip_a_tier_whose_context_window_overflows() -> None:
    small = ModelSpec(
        name="tiny", tier=Tier.NANO, context_window=8_000, max_output_tokens=1_000, pricing=FREE
    )
    cat = default_catalog()
    req = RouteRequest(
        subtask=request().subtask,
        agent=agent(),
        estimated_input_tokens=20_000,
        ladder=Ladder(
            {
                Tier.NANO: ScriptedModel([], spec=small),
                Tier.MINI: ScriptedModel([], spec=cat.for_tier(Tier.MINI)),
            }
        ),
    )
    d = RuleRouter().decide(req)
    assert d.tier is Tier.MINI
    assert "nano skipped" in d.reason


def test_rules_read_the_top_and_the_next_rung_from_the_ladder() -> None:
    cat = default_catalog()
    pro = ModelSpec(
        name="gpt-5.4-pro",
        tier=Tier("pro"),
        context_window=1_050_000,
        max_output_tokens=1_000,
        pricing=FREE,
    )
    four = Ladder(
        [
            *((t, ScriptedModel([], spec=cat.for_tier(t))) for t in Tier),
            (Tier("pro"), ScriptedModel([], spec=pro)),
        ]
    )
    assert RuleRouter().decide(request(ladder=four, plan_shaped=True)).tier is Tier("pro")
    two = Ladder(
        {
            Tier.NANO: ScriptedModel([], spec=cat.for_tier(Tier.NANO)),
            Tier.MINI: ScriptedModel([], spec=cat.for_tier(Tier.MINI)),
        }
    )
    assert RuleRouter().decide(request(ladder=two, plan_shaped=True)).tier is Tier.MINI
    assert RuleRouter().decide(request(ladder=two, stakes=Stakes.HIGH)).tier is Tier.MINI


def test_a_route_to_a_tier_the_ladder_lacks_is_a_user_error() -> None:
    cat = default_catalog()
    only_nano = Ladder({Tier.NANO: ScriptedModel([], spec=cat.for_tier(Tier.NANO))})
    with pytest.raises(UserError, match="not on this ladder"):
        RuleRouter().decide(request(ladder=only_nano, tier=Tier.MINI))


def test_policy_escalates_along_the_ladder_and_decomposes_at_its_top() -> None:
    cat = default_catalog()
    two = Ladder(
        {
            Tier.NANO: ScriptedModel([], spec=cat.for_tier(Tier.NANO)),
            Tier.MINI: ScriptedModel([], spec=cat.for_tier(Tier.MINI)),
        }
    )
    base = state(Tier.MINI)
    st = PolicyState(
        subtask=base.subtask,
        agent=base.agent,
        ladder=two,
        attempts=base.attempts,
        depth=0,
        max_depth=1,
    )
    f = Failure(kind=FailureKind.OUTPUT_INVALID, message="bad", tier=Tier.MINI)
    assert DefaultPolicy().decide(f, st).action is Action.DECOMPOSE


def test_a_rate_limit_never_moves_a_subtask_to_a_pricier_tier() -> None:
    f = Failure(
        kind=FailureKind.MODEL_ERROR,
        message="429",
        tier=Tier.NANO,
        retryable=True,
        rate_limited=True,
    )
    p = DefaultPolicy()
    for n in range(1, 4):
        d = p.decide(f, state(*[Tier.NANO] * n))
        assert d.action is Action.RETRY
        assert d.tier is Tier.NANO
    assert p.decide(f, state(*[Tier.NANO] * 4)).action is Action.GIVE_UP


def test_policy_rules_compose_without_index_surgery() -> None:
    never = Rule(name="never", when=lambda f, s: True, action=Action.GIVE_UP, why="no")
    p = DefaultPolicy(rules=[never, *DefaultPolicy.default_rules()])
    f = Failure(kind=FailureKind.OUTPUT_INVALID, message="bad", tier=Tier.NANO)
    assert p.decide(f, state(Tier.NANO)).action is Action.GIVE_UP
    assert [r.name for r in p.rules][:2] == ["never", "plan_shaped"]


def classifier_models(reply: ScriptStep) -> dict[Tier, Model]:
    cat = default_catalog()
    return {t: ScriptedModel([reply], spec=cat.for_tier(t)) for t in Tier}


async def test_classifier_router_uses_a_confident_answer() -> None:
    models = classifier_models({"tier": "mini", "confidence": 0.9, "reason": "multi-step tools"})
    d = await ClassifierRouter().route(request(), models=models, ledger=Ledger())
    assert d.tier is Tier.MINI
    assert d.router == "classifier"
    assert "multi-step" in d.reason
    nano = models[Tier.NANO]
    assert isinstance(nano, ScriptedModel)
    assert len(nano.requests) == 1


async def test_classifier_router_falls_back_to_rules_when_unsure() -> None:
    models = classifier_models({"tier": "flagship", "confidence": 0.2, "reason": "hmm"})
    d = await ClassifierRouter().route(request(), models=models, ledger=Ledger())
    assert d.tier is Tier.NANO
    assert "unsure" in d.reason


async def test_classifier_router_keeps_hard_rules_without_asking() -> None:
    models = classifier_models({"tier": "nano", "confidence": 1.0, "reason": "easy"})
    d = await ClassifierRouter().route(request(plan_shaped=True), models=models, ledger=Ledger())
    assert d.tier is Tier.FLAGSHIP
    nano = models[Tier.NANO]
    assert isinstance(nano, ScriptedModel)
    assert nano.requests == []


async def test_classifier_router_falls_back_when_the_classifier_fails() -> None:
    def broken(_: ModelRequest) -> ScriptStep:
        return "not json"

    cat = default_catalog()
    models: dict[Tier, Model] = {t: ScriptedModel(broken, spec=cat.for_tier(t)) for t in Tier}
    d = await ClassifierRouter().route(request(), models=models, ledger=Ledger())
    assert d.tier is Tier.NANO
    assert "classifier failed" in d.reason


def state(*tiers: Tier, depth: int = 0) -> PolicyState:
    from decimal import Decimal

    from tiered import Attempt, Usage

    attempts = [
        Attempt(
            number=i + 1,
            tier=t,
            model="m",
            reason="r",
            usage=Usage(),
            cost=Decimal(0),
            equivalent_cost=Decimal(0),
            duration_s=0.0,
            outcome="x",
        )
        for i, t in enumerate(tiers)
    ]
    subtask = Subtask(id="s", agent="worker", instructions="do", arguments={"text": "x"})
    return PolicyState(
        subtask=subtask,
        agent=agent(),
        ladder=standard_ladder(),
        attempts=attempts,
        depth=depth,
        max_depth=1,
    )


def test_policy_retries_transient_errors_once_per_tier() -> None:
    f = Failure(kind=FailureKind.MODEL_ERROR, message="503", tier=Tier.NANO, retryable=True)
    p = DefaultPolicy()
    assert p.decide(f, state(Tier.NANO)).action is Action.RETRY
    second = p.decide(f, state(Tier.NANO, Tier.NANO))
    assert second.action is Action.ESCALATE
    assert second.tier is Tier.MINI


def test_policy_escalates_invalid_output_and_decomposes_at_the_top() -> None:
    p = DefaultPolicy(max_attempts=5)
    f = Failure(kind=FailureKind.OUTPUT_INVALID, message="bad", tier=Tier.MINI)
    assert p.decide(f, state(Tier.MINI)).tier is Tier.FLAGSHIP
    top = Failure(kind=FailureKind.OUTPUT_INVALID, message="bad", tier=Tier.FLAGSHIP)
    assert p.decide(top, state(Tier.FLAGSHIP)).action is Action.DECOMPOSE
    assert p.decide(top, state(Tier.FLAGSHIP, depth=1)).action is Action.GIVE_UP


def test_policy_sends_plan_shaped_signals_to_the_planner() -> None:
    f = Failure(kind=FailureKind.PLAN_SHAPED, message="needs steps", tier=Tier.NANO)
    d = DefaultPolicy().decide(f, state(Tier.NANO))
    assert d.action is Action.DECOMPOSE
    assert "plan-shaped" in d.reason


def test_policy_gives_up_after_max_attempts() -> None:
    f = Failure(kind=FailureKind.TOOL_FAILURE, message="x", tier=Tier.NANO)
    d = DefaultPolicy(max_attempts=2).decide(f, state(Tier.NANO, Tier.NANO))
    assert d.action is Action.GIVE_UP
