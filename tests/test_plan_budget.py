"""Budget planning before fan-out: a plan's estimate is refused, or routed down to fit,
before anything runs; estimate and actual both reach the report and the JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from orchestration_support import Echo, ladder, subtask
from tiered import Budget, Orchestrator, Plan, RunStatus, Tier
from tiered._errors import PlanOverBudget

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
