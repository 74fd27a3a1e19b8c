"""Confidence gates: calibrated by `tiered eval`, chosen by the router, applied at run time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestration_support import Echo, Text, last_user, subtask, tier_of
from tiered import (
    CalibratedRouter,
    Calibration,
    Case,
    DefaultPolicy,
    EvalReport,
    Evaluation,
    Ledger,
    Limits,
    ModelRequest,
    ModelResponse,
    Orchestrator,
    Plan,
    RouteDecision,
    RouteRequest,
    ScriptedModel,
    Tier,
    default_catalog,
    evaluate,
)
from tiered._cli_eval import _routes
from tiered._confidence import gate_options
from tiered._messages import AssistantMessage
from tiered._usage import Usage
from tiered.models import Ladder, Model

pytestmark = pytest.mark.anyio

KNOWN = {f"w{i}" for i in range(14)}
"""What nano gets right, and is sure of; it is wrong, and unsure, on the rest."""
WORDS = [f"w{i}" for i in range(20)]


def test_each_gate_says_what_it_sends_up_and_what_the_cascade_gets_right() -> None:
    paired = [(0.9, True, True), (0.8, True, True), (0.3, False, True), (0.2, False, False),
              (None, False, True)]  # fmt: skip
    options = gate_options(paired)
    assert [round(o.gate, 3) for o in options] == [0.25, 0.55, 0.85]
    middle = options[1]
    assert (middle.escalated, middle.success, middle.n) == (0.6, 0.8, 5)
    assert gate_options([(None, False, True)]) == []  # nothing reported: no gate
    # shrunk toward a gate that sorts nothing: kept 2 (40% prior), sent up 3 (80% prior)
    assert middle.expected == pytest.approx((2 * (2 + 0.8) / 4 + 3 * (2 + 1.6) / 5) / 5)


def test_a_gate_that_looks_perfect_on_two_replies_is_not_taken_at_its_word() -> None:
    """16 cases: nano right on 6, mini on 8; a gate that sends up the 2 replies that
    nano got wrong and mini right measures mini's 50%, but its evidence is thin."""
    paired = [(0.1, False, True), (0.15, False, True)]
    paired += [(0.5 + i / 100, i < 6, i < 6) for i in range(14)]
    lowest = gate_options(paired)[1]  # between 0.15 and 0.50
    assert (lowest.escalated, lowest.success) == (2 / 16, 0.5)
    assert lowest.expected < 0.47  # under mini's 50%, less a point: the router keeps mini


def gated_ladder(*, mini_fails: bool = False) -> dict[Tier, Model]:
    """nano: right and sure on KNOWN, else wrong and unsure; mini: right, no confidence."""
    models: dict[Tier, Model] = {}

    def reply(request: ModelRequest) -> ModelResponse:
        word = json.loads(last_user(request).rsplit("Input:", 1)[-1])["text"]
        tier = tier_of(request, models)
        sure = tier is Tier.NANO and word in KNOWN
        right = tier is not Tier.NANO or sure
        text = word.upper() if right else "wrong"
        if tier is not Tier.NANO and mini_fails:
            text = "mini failed"
        return ModelResponse(
            message=AssistantMessage(content=json.dumps({"text": text})),
            usage=Usage(input_tokens=100, output_tokens=10, requests=1),
            model_name=f"scripted-{tier.value}",
            confidence=(0.9 if sure else 0.2) if tier is Tier.NANO else None,
        )

    catalog = default_catalog()
    models.update({t: ScriptedModel(reply, spec=catalog.for_tier(t)) for t in Tier})
    return models


def check(output: Text, case: Case) -> bool:
    return output.text == str(case.input["text"]).upper()


async def evaluated(models: dict[Tier, Model]) -> EvalReport:
    cases = [Case(input={"text": w}, id=w) for w in WORDS]
    evaluation = Evaluation(agent=Echo(), cases=cases, check=check)
    return await evaluate(evaluation, models=models, tiers=["nano", "mini"])


async def calibrated(models: dict[Tier, Model]) -> Calibration:
    return (await evaluated(models)).calibration()


async def test_the_eval_keeps_each_cases_confidence_beside_both_verdicts() -> None:
    cal = await calibrated(gated_ladder())
    (entry,) = cal.entries.values()
    nano, mini = entry.tiers["nano"], entry.tiers["mini"]
    assert (nano.n, nano.successes, mini.successes) == (20, 14, 20)
    assert sorted(nano.paired) == sorted([(0.9, True, True)] * 14 + [(0.2, False, True)] * 6)
    assert mini.paired == ()  # nothing above mini was run
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.entries == cal.entries


async def test_the_eval_table_shows_whether_confidence_tells_right_from_wrong() -> None:
    report = await evaluated(gated_ladder())
    nano, mini = (line for line in report.table().splitlines() if line.startswith("all"))
    assert "0.90 / 0.20" in nano  # median confidence of its right and its wrong answers
    assert "0.90" not in mini  # mini reports none
    models = gated_ladder()
    routes = _routes(report, {t: models[t] for t in report.tiers})
    assert "  all: nano gated < 0.55 (nano: 70% ± 19 on 20 cases, confidence gate" in routes


@pytest.mark.parametrize("subtask_timeout", [None, 30.0])  # the two ways an attempt is run
async def test_a_gated_nano_start_beats_mini_where_nanos_doubt_marks_its_mistakes(
    subtask_timeout: float | None,
) -> None:
    models = gated_ladder()
    router = CalibratedRouter(await calibrated(models))
    limits = Limits(subtask_timeout=subtask_timeout)
    orch = Orchestrator([Echo()], models=models, router=router, limits=limits)
    plan = Plan(subtasks=(subtask("sure", text="w1"), subtask("unsure", text="w17")))
    result = await orch.run("words", plan=plan, compose=False)
    sure, unsure = result.subtasks["sure"], result.subtasks["unsure"]
    # nano alone is 70%, under the 95% floor: without the gate the router would pick mini
    assert "confidence gate 0.55: 30% sent up to mini" in sure.attempts[0].reason
    assert "(cascade 97%)" in sure.attempts[0].reason  # 100% measured, shrunk (below)
    assert [a.tier for a in sure.attempts] == [Tier.NANO]
    assert sure.output == Text(text="W1")
    assert [(a.tier, a.outcome) for a in unsure.attempts] == [
        (Tier.NANO, "low_confidence"),
        (Tier.MINI, "succeeded"),
    ]
    assert "confidence 0.20, under the gate 0.55" in (unsure.attempts[0].error or "")
    assert unsure.output == Text(text="W17")
    assert result.status.value == "succeeded"
    off = CalibratedRouter(router.evidence, confidence_gates=False)
    plain = await Orchestrator([Echo()], models=models, router=off).run(
        "words", plan=Plan(subtasks=(subtask("sure", text="w1"),)), compose=False
    )
    assert [a.tier for a in plain.subtasks["sure"].attempts] == [Tier.MINI]  # nano's 70%


async def test_the_price_weighing_router_gates_where_a_success_is_worth_the_escalations() -> None:
    """nano alone is 70%; the gate buys 27 points for 30% of mini's price per case. At a
    success worth mini's price per success that is not worth it; at 3x it is."""
    models = gated_ladder()
    calibration = await calibrated(models)
    request = RouteRequest(
        subtask=subtask("s", text="w1"), agent=Echo(), estimated_input_tokens=100,
        ladder=Ladder(models),
    )  # fmt: skip

    async def decide(factor: float) -> RouteDecision:
        router = CalibratedRouter(calibration, value_factor=factor)
        return await router.route(request, models=models, ledger=Ledger())

    cheap, dear = await decide(1.0), await decide(3.0)
    assert (cheap.tier, cheap.gate) == (Tier.NANO, None)
    assert dear.tier is Tier.NANO
    assert dear.gate == pytest.approx(0.55)
    assert "confidence gate 0.55: 30% sent up to mini (cascade 97%)" in dear.reason
    assert "a success worth" in dear.reason


async def test_an_unsure_reply_stands_when_the_tier_above_fails_too() -> None:
    calibration = await calibrated(gated_ladder())
    models = gated_ladder(mini_fails=True)

    def mini_is_wrong(task: Any, output: Text) -> str | None:
        return "rejected" if output.text == "mini failed" else None

    orch = Orchestrator(
        [Echo()],
        models=models,
        router=CalibratedRouter(calibration),
        verify={"Echo": mini_is_wrong},
        policy=DefaultPolicy(max_attempts=2),  # nano, then mini: no flagship, no planner
    )
    plan = Plan(subtasks=(subtask("unsure", text="w17"),))
    record = (await orch.run("words", plan=plan, compose=False)).subtasks["unsure"]
    assert [a.outcome for a in record.attempts] == ["low_confidence", "verifier_rejected"]
    assert record.status.value == "succeeded"
    assert record.output == Text(text="wrong")  # nano's reply: it passed the verifier
