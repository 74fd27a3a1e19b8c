"""Routing that weighs price: learned costs, per-category stats, calibrated rescues, and
the value rule shared by the default router and the gain-aware policy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestration_support import Echo, ladder, subtask, tier_of
from tiered import (
    Agent,
    Ledger,
    ModelRequest,
    Orchestrator,
    Plan,
    RouteRequest,
    RoutingStats,
    RuleRouter,
    Subtask,
    Tier,
    default_catalog,
)
from tiered._calibrated import CalibratedRouter, Evidence, success_worth
from tiered._calibration import (
    AgentCalibration,
    Calibration,
    TierCalibration,
    agent_fingerprint,
    model_names,
)
from tiered._escalation import Attempt
from tiered._eval_report import CaseOutcome, EvalReport
from tiered._gain import default_router, should_escalate
from tiered._usage import Usage
from tiered.models import Ladder, Model, ScriptedModel, ScriptStep

AGENT: Agent[Any] = Agent(name="extractor", instructions="Extract the total.")
TIERS = (Tier.NANO, Tier.MINI, Tier.FLAGSHIP)


def models() -> dict[Tier, ScriptedModel]:
    return {t: ScriptedModel(["x"], name=f"model-{t.value}", tier=t) for t in TIERS}


def learned(**tiers: tuple[float, int, str]) -> RoutingStats:
    """Stats with first tries per tier: (success rate, n, dollars per attempt)."""
    stats = RoutingStats(half_life=10_000)
    for name, (rate, n, cost) in tiers.items():
        for i in range(n):
            ok = int((i + 1) * rate) > int(i * rate)
            stats.record(AGENT.name, Tier(name), ok, cost=Decimal(cost))
    return stats


def rescues(
    stats: RoutingStats, tier: Tier, after: Tier, rate: float, cost: str, n: int = 20
) -> None:
    for i in range(n):
        ok = int((i + 1) * rate) > int(i * rate)
        stats.record(AGENT.name, tier, ok, after=after, cost=Decimal(cost))


def route(router: CalibratedRouter, **subtask: Any) -> Any:
    found = models()
    req = RouteRequest(
        subtask=Subtask(id="s", agent=AGENT.name, instructions="do it", **subtask),
        agent=AGENT,
        estimated_input_tokens=500,
        ladder=Ladder(found),
    )
    return anyio.run(lambda: router.route(req, models=found, ledger=Ledger()))


def test_stats_keep_cost_per_cell_and_category_rescue_cells(tmp_path: Path) -> None:
    stats = RoutingStats()
    stats.record("a", Tier.NANO, True, "invoices", cost=Decimal("0.002"))
    stats.record("a", Tier.NANO, False, "invoices", cost=Decimal("0.004"))
    stats.record("a", Tier.MINI, True, "invoices", after=Tier.NANO, cost=Decimal("0.01"))
    mean = stats.mean_cost("a", Tier.NANO, "invoices")
    assert mean is not None
    assert abs(mean - Decimal("0.003")) < Decimal("0.0001")
    assert stats.mean_cost("a", Tier.FLAGSHIP) is None  # never ran: no price learned
    # a categorised rescue updates its category's cell and the agent's
    assert stats.estimate("a", Tier.MINI, "invoices", after=Tier.NANO).n == 1
    assert stats.estimate("a", Tier.MINI, after=Tier.NANO).n == 1
    # a category with no rescue of its own reads the agent's
    assert stats.estimate("a", Tier.MINI, "receipts", after=Tier.NANO).n == 1
    path = tmp_path / "stats.json"
    stats.save(path)
    again = RoutingStats.load(path)
    assert again.mean_cost("a", Tier.MINI, "invoices", after=Tier.NANO) == Decimal("0.01")


@pytest.mark.anyio
async def test_orchestrator_learns_per_category_with_the_attempts_dollars() -> None:
    found: dict[Tier, Model] = {}

    def responder(request: ModelRequest) -> ScriptStep:
        return {"text": tier_of(request, found).value}

    found.update(ladder(responder))
    stats = RoutingStats()
    orch = Orchestrator([Echo()], models=found, stats=stats)
    task = subtask("v").model_copy(update={"category": "short"})
    result = await orch.run("go", plan=Plan(subtasks=(task,)), compose=False)
    assert result.subtasks["v"].status.value == "succeeded"
    assert stats.estimate("Echo", Tier.NANO, "short").n == 1
    assert stats.estimate("Echo", Tier.NANO).n == 1
    cost = stats.mean_cost("Echo", Tier.NANO, "short")
    assert cost is not None
    assert cost == result.subtasks["v"].attempts[0].cost


def test_the_default_router_weighs_price_over_learned_stats_only() -> None:
    stats = RoutingStats()
    router = default_router(None, stats)
    assert isinstance(router, CalibratedRouter)
    assert router.value_factor == 1.0
    assert isinstance(default_router(None, None), RuleRouter)
    mine = RuleRouter()
    assert default_router(mine, stats) is mine


def test_worth_router_starts_cheap_where_the_rescue_pays_and_high_where_it_does_not() -> None:
    # nano right 90%, mini 93%: a success is worth ~ $0.097 (flagship's $0.09 / 93%)
    cheap = learned(nano=(0.9, 40, "0.002"), mini=(0.93, 40, "0.008"), flagship=(0.93, 40, "0.09"))
    decision = route(CalibratedRouter(Evidence(stats=cheap), value_factor=1.0))
    assert decision.tier is Tier.NANO
    worth = success_worth(Evidence(stats=cheap).views(AGENT, models()), 1.0)
    assert worth is not None
    assert f"a success worth ${worth:.5f}" in decision.reason
    # nano right 20% of the time: its failed tries cost more than starting on mini
    weak = learned(nano=(0.2, 40, "0.02"), mini=(0.9, 40, "0.03"), flagship=(0.9, 40, "0.3"))
    rescues(weak, Tier.MINI, Tier.NANO, 0.85, "0.03")
    assert route(CalibratedRouter(Evidence(stats=weak), value_factor=1.0)).tier is Tier.MINI


def test_worth_router_keeps_to_the_rules_with_one_tier_measured_and_honours_hints() -> None:
    one = learned(mini=(0.9, 40, "0.008"))
    router = CalibratedRouter(Evidence(stats=one), value_factor=1.0)
    assert route(router).router == "rules"
    both = learned(nano=(0.9, 40, "0.002"), mini=(0.93, 40, "0.008"))
    hinted = route(CalibratedRouter(Evidence(stats=both), value_factor=1.0), tier=Tier.MINI)
    assert hinted.tier is Tier.MINI
    assert hinted.router == "rules"


def test_success_worth_is_the_top_measured_tiers_dollars_per_success() -> None:
    views = Evidence(stats=learned(nano=(0.5, 40, "0.001"), mini=(0.8, 40, "0.01"))).views(
        AGENT, models()
    )
    worth = success_worth(views, 2.0)
    assert worth is not None
    mini = views[-1]
    assert mini.cost is not None
    assert worth == 2 * mini.cost / Decimal(str(mini.estimate.mean))


def test_escalation_learned_to_rescue_but_too_dear_is_declined_with_the_numbers() -> None:
    stats = learned(nano=(0.9, 40, "0.002"), mini=(0.91, 40, "0.008"), flagship=(0.91, 40, "0.1"))
    rescues(stats, Tier.FLAGSHIP, Tier.MINI, 0.3, "0.1")  # flagship fixes 30% of mini's...
    ev = Evidence(stats=stats)
    go, why = should_escalate(ev, AGENT, models(), Tier.MINI, Tier.FLAGSHIP)
    assert not go  # ...failures at $0.1 / 0.32 per success, over the $0.11 a success is worth
    assert "per success bought, over the $0.1" in why
    go, why = should_escalate(ev, AGENT, models(), Tier.MINI, Tier.FLAGSHIP, value_factor=None)
    assert go
    assert "escalate" in why
    rescues(stats, Tier.MINI, Tier.NANO, 0.4, "0.008")  # mini fixes 40% of nano's: $0.02 each
    assert should_escalate(ev, AGENT, models(), Tier.NANO, Tier.MINI)[0]


def test_unmeasured_rescues_are_learned_by_escalating_unless_even_a_sure_one_is_dear() -> None:
    stats = learned(nano=(0.9, 40, "0.002"), mini=(0.9, 40, "0.008"), flagship=(0.9, 40, "0.02"))
    ev = Evidence(stats=stats)
    go, why = should_escalate(ev, AGENT, models(), Tier.NANO, Tier.MINI)
    assert go
    assert "has rescued 0 of 10 nano failures" in why
    assert "learn what it buys" in why
    # the margin rule would have refused: mini is no better on its own traffic
    assert not should_escalate(ev, AGENT, models(), Tier.NANO, Tier.MINI, value_factor=None)[0]
    dear = learned(nano=(0.9, 40, "0.002"), mini=(0.9, 40, "0.5"), flagship=(0.9, 40, "0.05"))
    go, why = should_escalate(Evidence(stats=dear), AGENT, models(), Tier.NANO, Tier.MINI)
    assert not go
    assert "even a sure rescue is dear" in why


def _outcome(case: str, tier: Tier, ok: bool, category: str = "c") -> CaseOutcome:
    return CaseOutcome(
        case_id=case,
        category=category,
        tier=tier,
        model=f"model-{tier.value}",
        succeeded=ok,
        failure=None if ok else "wrong",
        detail="",
        cost=Decimal("0.001"),
        equivalent_cost=Decimal("0.001"),
        input_tokens=10,
        output_tokens=5,
        latency_s=0.1,
        turns=1,
    )


def test_eval_calibration_records_what_each_tier_rescued_on_the_same_cases() -> None:
    grid = {"a": (True, True), "b": (False, True), "c": (False, False), "d": (False, True)}
    outcomes = [
        _outcome(case, tier, oks[i])
        for case, oks in grid.items()
        for i, tier in enumerate((Tier.NANO, Tier.MINI))
    ]
    report = EvalReport(
        name="e",
        agent=AGENT,
        models={Tier.NANO: "model-nano", Tier.MINI: "model-mini"},
        tiers=(Tier.NANO, Tier.MINI),
        outcomes=tuple(outcomes),
    )
    entry = next(iter(report.calibration().entries.values()))
    mini, nano = entry.tiers["mini"], entry.tiers["nano"]
    assert (nano.after_failures, nano.rescued) == (0, 0)
    assert (mini.after_failures, mini.rescued) == (3, 2)
    assert (
        entry.categories["c"]["mini"].after_failures,
        entry.categories["c"]["mini"].rescued,
    ) == (3, 2)
    back = TierCalibration.from_dict(mini.to_dict())
    assert (back.after_failures, back.rescued) == (3, 2)


def test_evidence_pools_the_calibrations_rescues_with_learned_ones() -> None:
    found = models()
    tiers = {
        "nano": TierCalibration(n=100, successes=80, cost_per_case=Decimal("0.001")),
        "mini": TierCalibration(
            n=100, successes=85, cost_per_case=Decimal("0.004"), after_failures=20, rescued=10
        ),
    }
    entry = AgentCalibration(
        agent=AGENT.name, models={t.value: n for t, n in model_names(found).items()}, tiers=tiers
    )
    cal = Calibration({agent_fingerprint(AGENT, model_names(found)): entry})
    ev = Evidence(cal)
    got = ev.rescue(AGENT, found, Tier.MINI, Tier.NANO)
    assert got is not None
    assert got.n == 20
    assert got.mean == pytest.approx(0.5)
    assert ev.rescue(AGENT, found, Tier.FLAGSHIP, Tier.NANO) is None  # not the rung below
    stats = RoutingStats()
    for _ in range(30):
        stats.record(AGENT.name, Tier.MINI, True, after=Tier.NANO)
    pooled = Evidence(cal, stats).rescue(AGENT, found, Tier.MINI, Tier.NANO)
    assert pooled is not None
    assert pooled.n == 50
    assert pooled.mean > 0.7


def test_unlearned_prices_come_from_the_failed_attempts_tokens() -> None:
    catalog = default_catalog()
    priced = {t: ScriptedModel(["x"], spec=catalog.for_tier(t)) for t in TIERS}
    stats = learned(nano=(0.9, 40, "0.002"), mini=(0.9, 40, "0.008"))
    for i in range(20):  # flagship fixed 30% of mini's failures; nobody learned its price
        stats.record(AGENT.name, Tier.FLAGSHIP, i % 10 < 3, after=Tier.MINI)
    failed = Attempt(
        number=1,
        tier=Tier.MINI,
        model="gpt-5.4-mini",
        reason="",
        usage=Usage(input_tokens=20_000, output_tokens=2_000),
        cost=Decimal("0.024"),
        equivalent_cost=Decimal("0.024"),
        duration_s=0.0,
        outcome="verifier_rejected",
    )
    ev = Evidence(stats=stats)
    # the same tokens on gpt-5.4 cost $0.08: a success is worth $0.08 / 90%, a rescue
    # $0.08 / 31.8% (the posterior mean of 6 in 20)
    go, why = should_escalate(ev, AGENT, priced, Tier.MINI, Tier.FLAGSHIP, attempt=failed)
    assert not go
    assert "$0.25147 per success bought, over the $0.08889" in why
    assert should_escalate(ev, AGENT, priced, Tier.MINI, Tier.FLAGSHIP)[0]  # no price known


def test_the_router_reads_the_subtasks_category() -> None:
    found = models()
    by_kind = {
        "easy": {
            "nano": TierCalibration(n=50, successes=49, cost_per_case=Decimal("0.001")),
            "mini": TierCalibration(n=50, successes=49, cost_per_case=Decimal("0.004")),
        },
        "hard": {
            "nano": TierCalibration(n=50, successes=10, cost_per_case=Decimal("0.001")),
            "mini": TierCalibration(n=50, successes=48, cost_per_case=Decimal("0.004")),
        },
    }
    entry = AgentCalibration(
        agent=AGENT.name,
        models={t.value: n for t, n in model_names(found).items()},
        tiers=by_kind["easy"],
        categories=by_kind,
    )
    cal = Calibration({agent_fingerprint(AGENT, model_names(found)): entry})
    router = CalibratedRouter(cal)
    assert route(router, category="easy").tier is Tier.NANO
    hard = route(router, category="hard")
    assert hard.tier is Tier.MINI
    assert "[hard]" in hard.reason
    assert route(CalibratedRouter(cal, value_factor=1.0), category="hard").tier is Tier.MINI
