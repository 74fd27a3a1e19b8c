"""Calibration, learned stats, the calibrated router and gain-aware escalation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from tiered import Agent, Ledger, OutputInvalid, RouteRequest, Subtask, Tier, UserError
from tiered._calibrated import CalibratedRouter, Evidence
from tiered._calibration import (
    AgentCalibration,
    Calibration,
    TierCalibration,
    agent_fingerprint,
    model_names,
    ordered_tiers,
)
from tiered._escalation import Action, Attempt, Failure, FailureKind
from tiered._gain import gain_aware_rules, should_escalate
from tiered._learning import RoutingStats, wilson_interval
from tiered._usage import Usage
from tiered.models import Ladder, ScriptedModel

AGENT: Agent[Any] = Agent(name="extractor", instructions="Extract the total.")


def ladder() -> dict[Tier, ScriptedModel]:
    return {
        t: ScriptedModel(["x"], name=f"model-{t.value}", tier=t)
        for t in (Tier.NANO, Tier.MINI, Tier.FLAGSHIP)
    }


def calibrate(models: Any, **tiers: tuple[int, int, int, str]) -> Calibration:
    entry = AgentCalibration(
        agent=AGENT.name,
        models={t.value: n for t, n in model_names(models).items()},
        tiers={
            name: TierCalibration(
                n=n, successes=s, detected_failures=d, cost_per_case=Decimal(cost)
            )
            for name, (n, s, d, cost) in tiers.items()
        },
    )
    return Calibration({agent_fingerprint(AGENT, model_names(models)): entry})


def request(agent: Agent[Any] = AGENT, **subtask: Any) -> RouteRequest:
    return RouteRequest(
        subtask=Subtask(id="s", agent=agent.name, instructions="do it", **subtask),
        agent=agent,
        estimated_input_tokens=500,
        ladder=Ladder(ladder()),
    )


def route(router: CalibratedRouter, models: Any, req: RouteRequest | None = None) -> Any:
    return anyio.run(lambda: router.route(req or request(), models=models, ledger=Ledger()))


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(92, 100)
    assert (round(low, 3), round(high, 3)) == (0.850, 0.959)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_ordered_tiers_puts_standard_tiers_first() -> None:
    assert ordered_tiers(["flagship", "pro", "nano"]) == ["nano", "flagship", "pro"]


def test_router_prefers_the_cheap_tier_that_clears_the_floor() -> None:
    models = ladder()
    cal = calibrate(models, nano=(120, 117, 2, "0.0001"), mini=(120, 118, 1, "0.0004"))
    decision = route(CalibratedRouter(cal), models)
    assert decision.tier == Tier.NANO
    assert decision.router == "calibrated"
    assert decision.reason.startswith("nano: 98% ± 3 on 120 cases")
    assert "per success" in decision.reason
    assert "mini 98%" in decision.reason


def test_router_skips_a_tier_under_the_floor_and_says_so() -> None:
    models = ladder()
    cal = calibrate(models, nano=(100, 70, 5, "0.0001"), mini=(100, 97, 1, "0.0004"))
    decision = route(CalibratedRouter(cal, min_success=0.95), models)
    assert decision.tier == Tier.MINI
    # visible failures escalate, so a cheap start can still win when they are most of them
    cal = calibrate(models, nano=(100, 80, 20, "0.0001"), mini=(100, 99, 1, "0.0004"))
    assert route(CalibratedRouter(cal), models).tier == Tier.NANO


def test_router_falls_back_to_rules_without_calibration_and_honours_hints() -> None:
    models = ladder()
    decision = route(CalibratedRouter(Calibration()), models)
    assert decision.tier == Tier.NANO
    assert "no calibration" in decision.reason
    cal = calibrate(models, nano=(100, 99, 1, "0.0001"), mini=(100, 99, 1, "0.0004"))
    other_models = {t: ScriptedModel(["x"], name="other", tier=t) for t in models}
    assert "no calibration" in route(CalibratedRouter(cal), other_models).reason  # stale
    hinted = route(CalibratedRouter(cal), models, request(tier=Tier.MINI))
    assert hinted.tier == Tier.MINI
    assert hinted.router == "rules"


def test_calibration_round_trips_and_merges(tmp_path: Path) -> None:
    models = ladder()
    cal = calibrate(models, nano=(10, 9, 1, "0.0001"))
    path = tmp_path / "calibration.json"
    cal.save(path)
    other = Calibration({"abc": AgentCalibration(agent="b", models={}, tiers={})})
    other.save(path)
    loaded = Calibration.load(path)
    assert set(loaded.entries) == {"abc", *cal.entries}
    assert loaded.lookup(AGENT, models) == cal.lookup(AGENT, models)
    path.write_text("{nope")
    with pytest.raises(UserError, match="cannot read calibration"):
        Calibration.load(path)


def test_stats_forget_and_persist(tmp_path: Path) -> None:
    stats = RoutingStats(half_life=10)
    for _ in range(100):
        stats.record("a", Tier.NANO, True, category="c")
    for _ in range(20):
        stats.record("a", Tier.NANO, False, category="c")
    recent = stats.estimate("a", Tier.NANO, "c")
    assert recent.n == 120
    assert recent.mean < 0.3
    assert stats.estimate("a", Tier.NANO).n == 120  # the overall cell follows too
    assert stats.estimate("a", Tier.MINI).n == 0
    path = RoutingStats.beside(tmp_path / "run.jsonl")
    stats.save(path)
    again = RoutingStats.load(path)
    assert again.estimate("a", Tier.NANO, "c") == recent
    assert RoutingStats.load(tmp_path / "missing.json").rows() == []


def test_traffic_moves_up_within_50_observations_when_a_model_degrades() -> None:
    """A scripted nano that starts failing: the learned stats move routing to mini."""
    models = ladder()
    cal = calibrate(models, nano=(200, 196, 4, "0.0001"), mini=(200, 194, 6, "0.0004"))
    stats = RoutingStats()
    router = CalibratedRouter(Evidence(cal, stats))
    calls = {"n": 0}

    def nano_reply(req: Any) -> str:
        calls["n"] += 1
        return "{}" if calls["n"] > 20 else '{"total": 3}'  # broken from call 21 on

    class Total(Agent[Any]):
        name = "extractor"
        instructions = AGENT.instructions
        output_type = dict[str, int]
        strict_output = False
        max_repairs = 0

    nano = ScriptedModel(nano_reply, name="model-nano", tier=Tier.NANO)
    assert route(router, models).tier == Tier.NANO
    moved_after = None
    for i in range(1, 71):
        try:
            out = anyio.run(lambda: Total().run("total?", model=nano))
            ok = out.output == {"total": 3}
        except OutputInvalid:
            ok = False
        stats.record("extractor", Tier.NANO, ok)
        if i > 20 and moved_after is None and route(router, models).tier == Tier.MINI:
            moved_after = i - 20
    assert moved_after is not None
    assert moved_after <= 50
    assert "mini" in route(router, models).reason.split(":")[0]


def test_should_escalate_only_where_the_next_tier_is_better() -> None:
    models = ladder()
    flat = Evidence(calibrate(models, nano=(50, 40, 2, "0.0001"), mini=(50, 41, 2, "0.0004")))
    # value_factor=None: the rates alone decide (test_worth has the price rule)
    go, why = should_escalate(flat, AGENT, models, Tier.NANO, Tier.MINI, value_factor=None)
    assert not go
    assert "buys nothing" in why
    assert "mini 82% vs nano 80%" in why
    steep = Evidence(calibrate(models, nano=(50, 30, 2, "0.0001"), mini=(50, 45, 2, "0.0004")))
    go, why = should_escalate(steep, AGENT, models, Tier.NANO, Tier.MINI, value_factor=None)
    assert go
    assert "buys 30 points" in why
    go, why = should_escalate(Evidence(), AGENT, models, Tier.NANO, Tier.MINI, value_factor=None)
    assert go
    assert "no calibration" in why


def _state(attempt_tiers: list[Tier], agent: Any, models: Any) -> Any:
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
            outcome="output_invalid",
        )
        for i, t in enumerate(attempt_tiers)
    ]

    class State:  # the PolicyState the orchestrator issue adds: agent and ladder as data
        def __init__(self) -> None:
            self.attempts = attempts
            self.agent = agent
            self.ladder = models
            self.depth = 0
            self.max_depth = 1

    return State()


def test_gain_aware_rules_retry_then_give_up_and_stay_quiet_without_data() -> None:
    models = ladder()
    evidence = Evidence(calibrate(models, nano=(50, 40, 2, "1"), mini=(50, 41, 2, "4")))
    learn, retry, give_up = gain_aware_rules(evidence, value_factor=None)
    failure = Failure(kind=FailureKind.OUTPUT_INVALID, message="bad", tier=Tier.NANO)
    first = _state([Tier.NANO], AGENT, models)
    assert retry.action is Action.RETRY
    assert not learn.when(failure, first)  # without the price rule nothing is explored
    assert retry.when(failure, first)
    second = _state([Tier.NANO, Tier.NANO], AGENT, models)
    assert not retry.when(failure, second)
    assert give_up.when(failure, second)
    assert give_up.action is Action.GIVE_UP
    no_agent = _state([Tier.NANO], None, models)
    assert not retry.when(failure, no_agent)
    assert not give_up.when(failure, no_agent)
    unknown = _state([Tier.NANO], Agent(name="other", instructions="?"), models)
    assert not retry.when(failure, unknown)
    assert not give_up.when(failure, unknown)


def test_tolerance_accepts_a_cheaper_start_near_the_best_when_the_floor_is_out_of_reach() -> None:
    models = ladder()
    cal = calibrate(models, nano=(100, 85, 2, "0.0001"), mini=(100, 86, 2, "0.0004"))
    strict = route(CalibratedRouter(cal), models)
    assert strict.tier == Tier.MINI
    assert "no start reaches the 95% floor" in strict.reason
    lenient = route(CalibratedRouter(cal, tolerance=0.02), models)
    assert lenient.tier == Tier.NANO
    assert "within 2 points of the best" in lenient.reason
