"""The README's example on the real embedded models: structure, not wording.

These run the actual Qwen2.5-Coder models in-process (the `local` extra), with a small
goal so the whole file stays within a few minutes on two cores.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tiered import Orchestrator, Plan, RunStatus, Subtask, SubtaskStatus, Tier
from tiered._cli import main
from tiered._workflow import load_workflow
from tiered.models import LocalModel, models_from_env

pytestmark = [pytest.mark.local_model]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triage.py"
SMALL_GOAL = (
    'Ticket: "Order A-1003 came six days late, please refund me." Check order A-1003 and '
    "work out the refund owed if late orders are refunded in full."
)


@pytest.mark.anyio
async def test_forced_escalation_reruns_the_subtask_on_the_bigger_model() -> None:
    workflow = load_workflow(EXAMPLE)
    ladder = models_from_env()
    assert isinstance(ladder[Tier.NANO], LocalModel)
    seen: set[str] = set()

    def reject_first(subtask: Subtask, output: Any) -> str | None:
        if subtask.id in seen:
            return None
        seen.add(subtask.id)
        return "forced: first output rejected"

    orchestrator = Orchestrator(
        workflow.executors, models=ladder, verify={"OrderCheck": reject_first}
    )
    plan = Plan(
        subtasks=(
            Subtask(
                id="check",
                agent="OrderCheck",
                instructions="Look up order A-1003.",
                arguments={"order_id": "A-1003"},
            ),
        )
    )
    result = await orchestrator.run("check one order", plan=plan, deps=workflow.deps, compose=False)

    record = result.subtasks["check"]
    first, second = record.attempts[:2]
    assert (first.tier, first.outcome) == (Tier.NANO, "verifier_rejected")
    assert first.model == "qwen2.5-coder-0.5b"
    assert second.tier is Tier.MINI
    assert second.model == "qwen2.5-coder-1.5b"
    assert first.usage.input_tokens > 0
    assert second.usage.input_tokens > 0
    assert result.cost == 0
    assert result.equivalent_cost > 0


def test_cli_runs_the_example_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(EXAMPLE), "--goal", SMALL_GOAL, "--json", "--quiet"])
    captured = capsys.readouterr()
    assert "embedded local models" in captured.err
    data = json.loads(captured.out)

    assert code in (0, 1)
    assert data["status"] in {s.value for s in RunStatus}
    names = {"TicketTriage", "OrderCheck", "RefundMath"}
    subtasks = data["plan"]["subtasks"]
    assert subtasks
    assert {s["agent"] for s in subtasks} <= names
    ran = [r for r in data["subtasks"].values() if r["attempts"]]
    assert ran
    for r in ran:
        assert r["status"] in {s.value for s in SubtaskStatus}
        for a in r["attempts"]:
            assert a["tier"] in {t.value for t in Tier}
            assert a["usage"]["input_tokens"] > 0
    assert Decimal(data["cost"]) == 0
    assert Decimal(data["equivalent_cost"]) > 0
    assert Decimal(data["counterfactual_cost"]) >= Decimal(data["equivalent_cost"])
    assert data["usage"]["requests"] >= 2
    if data["status"] == "succeeded":
        assert data["final_answer"]
