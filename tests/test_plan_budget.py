"""Budget planning before fan-out: a plan's estimate is refused, or routed down to fit,
before anything runs; estimate and actual both reach the report and the JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from orchestration_support import Echo, ladder, subtask, tier_of
from tiered import Budget, Ladder, Ledger, ModelRequest, Orchestrator, Plan, RunStatus, Tier
from tiered._errors import PlanOverBudget
from tiered._estimate import estimate_plan

pytestmark = pytest.mark.anyio


def big_plan() -> Plan:
    return Plan(
        subtasks=tuple(
            subtask(f"s{i}", text="x" * 4000).model_copy(update={"tier": Tier.FLAGSHIP})
            for i in range(10)
        )
    )


async def test_refuse_names_the_estimate_and_spends_nothing() -> None:
    models = ladder(lambda r: {"text": "ok"})
    orch = Orchestrator(
        [Echo()], models=models, budget=Budget(usd=Decimal("0.01")), plan_budget="refuse"
    )
    with pytest.raises(PlanOverBudget, match=r"estimated at \$0\.\d+ \(flagship") as caught:
        await orch.run("go", plan=big_plan(), compose=False)
    assert "plan_budget='fit'" in str(caught.value)
    result = caught.value.result
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.usage.requests == 0


async def test_fit_routes_the_costliest_subtasks_down_until_the_estimate_fits() -> None:
    models = ladder(lambda r: {"text": "ok"})
    orch = Orchestrator(
        [Echo()], models=models, budget=Budget(usd=Decimal("0.5")), plan_budget="fit"
    )
    result = await orch.run("go", plan=big_plan(), compose=False)
    assert result.status is RunStatus.SUCCEEDED
    assert result.cost <= Decimal("0.5")
    est = result.estimate
    assert est is not None
    assert est.usd <= Decimal("0.5")
    assert est.downgraded  # some subtasks moved down
    assert all(v.startswith("flagship -> ") for v in est.downgraded.values())
    for sid in est.downgraded:
        assert result.subtasks[sid].attempts[0].tier is not Tier.FLAGSHIP
    report = result.report()
    assert "plan estimate before it ran" in report
    assert "routed down to fit" in report
    data = json.loads(result.to_json())
    assert Decimal(data["estimate"]["usd"]) == est.usd
    assert data["estimate"]["budget_usd"] == "0.5"


async def test_fit_that_cannot_fit_is_refused() -> None:
    models = ladder(lambda r: {"text": "ok"})
    orch = Orchestrator(
        [Echo()], models=models, budget=Budget(usd=Decimal("0.000001")), plan_budget="fit"
    )
    with pytest.raises(PlanOverBudget):
        await orch.run("go", plan=big_plan(), compose=False)


async def test_downgrade_moves_a_subtask_down_to_the_tier_whose_call_still_fits() -> None:
    seen: list[Tier] = []
    models = ladder(lambda r: {"text": "ok"})

    def answer(request: ModelRequest) -> dict[str, str]:
        seen.append(tier_of(request, models))
        return {"text": "ok"}

    models = ladder(answer)
    hinted = subtask("s", text="x" * 2000).model_copy(update={"tier": Tier.FLAGSHIP})
    # a budget that holds a nano call's worst case ($0.0056) but not mini's or the flagship's
    budget = Budget(usd=Decimal("0.01"), on_exhausted="downgrade")
    result = await Orchestrator([Echo()], models=models, budget=budget).run(
        "go", plan=Plan(subtasks=(hinted,)), compose=False
    )
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert seen == [Tier.NANO]  # the pricier tiers were never called
    (attempt,) = result.subtasks["s"].attempts
    assert attempt.tier is Tier.NANO
    assert attempt.reason.startswith("downgraded from mini")
    assert result.cost <= Decimal("0.01")


async def test_stop_skips_what_has_not_started_and_keeps_what_finished() -> None:
    models = ladder(lambda r: {"text": "ok"})
    b = subtask("b", "a").model_copy(update={"tier": Tier.FLAGSHIP})
    chain = Plan(subtasks=(subtask("a"), b, subtask("c", "b")))
    budget = Budget(usd=Decimal("0.01"))  # a's nano call fits; b's flagship worst case does not
    result = await Orchestrator([Echo()], models=models, budget=budget).run(
        "go", plan=chain, compose=False
    )
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.subtasks["a"].status.value == "succeeded"
    assert result.subtasks["b"].status.value == "skipped"
    assert result.subtasks["c"].status.value == "skipped"
    assert "budget" in (result.subtasks["b"].error or "").lower()
    assert result.cost <= Decimal("0.01")


def test_the_estimate_counts_upstream_outputs_only_for_agents_that_read_them() -> None:
    class Standalone(Echo):
        """Works from its arguments alone."""

        name = "Standalone"
        uses_dependencies = False

    models = ladder(lambda r: {"text": "ok"})
    executors = {"Echo": Echo(), "Standalone": Standalone()}
    plan = Plan(
        subtasks=(
            subtask("root"),
            subtask("reads", "root"),
            subtask("alone", "root", agent="Standalone"),
        )
    )
    est = estimate_plan(plan, executors, Ladder.of(models), Budget(usd=Decimal(1)), Ledger())
    tokens = {sid: e.input_tokens for sid, e in est.subtasks.items()}
    assert tokens["reads"] > tokens["root"]  # the root's output is in its prompt
    assert tokens["alone"] == tokens["root"]  # sent no upstream output: none estimated
