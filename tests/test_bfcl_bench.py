"""The BFCL bench's machinery on a vendored sample (tests/data, Apache-2.0): BFCL tools
through `Tool.from_schema`, the calls a run makes, the AST rule, and the replay of
routing strategies. No download: the full data set is the bench's business."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from bench_support import load_bench

load_bench()

from bench.bfcl.__main__ import ground_truth_calls, merge, perturbed  # noqa: E402
from bench.bfcl.data import BfclCase  # noqa: E402
from bench.bfcl.economics import replay  # noqa: E402
from bench.bfcl.evaluation import _input, agent, calls_made, held_out, pick, tools_for  # noqa: E402
from bench.bfcl.rule import score  # noqa: E402

from tiered import ModelRequest  # noqa: E402
from tiered.models import ScriptedModel, call  # noqa: E402

SAMPLE = Path(__file__).parent / "data" / "bfcl_sample.jsonl"
CASES = {
    row["id"]: BfclCase(**row)
    for row in map(json.loads, SAMPLE.read_text(encoding="utf-8").splitlines())
}


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_rule_accepts_the_ground_truth_and_rejects_a_perturbed_answer(case_id: str) -> None:
    case = CASES[case_id]
    truth = ground_truth_calls(case)
    assert score(case.category, case.functions, truth, case.ground_truth) == (True, "")
    if case.category != "irrelevance":
        valid, error = score(case.category, case.functions, perturbed(truth), case.ground_truth)
        assert not valid
        assert error


def test_rule_details() -> None:
    simple = CASES["simple_python_0"]
    gt = simple.ground_truth

    def s(args: dict[str, Any]) -> tuple[bool, str]:
        return score("simple_python", simple.functions, [{"calculate_triangle_area": args}], gt)

    assert s({"base": 10, "height": 5, "unit": "Units "}) == (True, "")  # case, spaces
    assert s({"base": 10}) == (False, "missing_required")
    assert s({"base": 10, "height": 5, "colour": "red"}) == (False, "unexpected_param")
    assert s({"base": "10", "height": 5}) == (False, "type_error")
    assert score("simple_python", simple.functions, [], gt) == (False, "wrong_count")
    par = CASES["parallel_0"]
    calls = ground_truth_calls(par)
    assert score("parallel", par.functions, calls[::-1], par.ground_truth) == (True, "")
    assert score("parallel", par.functions, calls[:1], par.ground_truth) == (False, "wrong_count")
    irr = CASES["irrelevance_0"]
    assert score("irrelevance", irr.functions, calls, []) == (False, "irrelevance")
    curve = CASES["simple_python_13"]
    name = curve.functions[0]["name"]
    for interval, verdict in (([1.0, 3.0], True), ([1, 3.0], False)):  # as BFCL: no int in
        args = {"function": "x**2", "interval": interval}  # a float array, one level deep
        assert score("simple_python", curve.functions, [{name: args}], curve.ground_truth)[0] is (
            verdict
        )


def test_a_run_through_the_framework_is_scored_under_the_dotted_names() -> None:
    case = CASES["parallel_multiple_0"]
    tools = tools_for(case)
    assert [t.name for t in tools] == [
        "math_toolkit_sum_of_multiples",
        "math_toolkit_product_of_primes",
    ]

    def reply(request: ModelRequest) -> Any:
        made = sum(1 for m in request.messages if getattr(m, "tool_calls", ()))
        if made == 0:
            return [call("math_toolkit_sum_of_multiples",
                         {"lower_limit": 1, "upper_limit": 1000, "multiples": [3, 5]})]  # fmt: skip
        if made == 1:
            return call("math_toolkit_product_of_primes", {"count": 5})
        return "Done."

    result = anyio.run(
        lambda: agent.run(_input(case), model=ScriptedModel(reply), extra_tools=tools)
    )
    calls = calls_made(result, tools)
    assert [next(iter(c)) for c in calls] == [
        "math_toolkit.sum_of_multiples",
        "math_toolkit.product_of_primes",
    ]
    assert score(case.category, case.functions, calls, case.ground_truth) == (True, "")


def test_pick_spreads_cases_evenly() -> None:
    cases = list(CASES.values())
    assert [c.id for c in pick(cases, 3)] == [cases[0].id, cases[2].id, cases[4].id]
    assert pick(cases, 100) == cases
    # shifted by half a step: the cases between those, none of them the same
    assert [c.id for c in pick(cases, 3, shift=0.5)] == [cases[1].id, cases[3].id, cases[5].id]


def test_held_out_cases_share_none_with_the_measured_set() -> None:
    cases = [replace(c, id=f"{c.id}-{i}") for i in range(6) for c in CASES.values()]
    measured = {c.id for c in pick(cases, 8)}
    # what earlier rounds called held out was not: a shifted 4 lies inside the measured 8
    assert {c.id for c in pick(cases, 4, shift=0.5)} <= measured
    tuning = held_out(cases, 4, measured=8)
    assert len(tuning) == 4
    assert not {c.id for c in tuning} & measured


def _outcome(case: str, cat: str, tier: str, failure: str | None, cost: str) -> dict[str, Any]:
    return {"case_id": case, "category": cat, "tier": tier, "succeeded": failure is None,
            "failure": failure, "cost": "0", "equivalent_cost": cost}  # fmt: skip


def test_replay_reads_strategies_off_the_measured_outcomes() -> None:
    outcomes = []
    split = {}
    for i in range(40):
        case = f"c{i}"
        split[case] = "calibrate" if i % 2 == 0 else "report"
        nano = None if i % 10 else "wrong"  # nano right 90%, its failures invisible
        mini = None if i % 20 else "output_invalid"
        outcomes += [_outcome(case, "x", "nano", nano, "0.001"),
                     _outcome(case, "x", "mini", mini, "0.004")]  # fmt: skip
    by = {s.name: s for s in replay(outcomes, split, tolerance=0.1)}
    assert by["all-nano"].successes == 20
    assert by["all-mini"].successes == 20
    assert by["all-mini"].equivalent_cost == Decimal("0.080")
    assert by["rules + default escalation"].escalations == 0  # nano's failures are invisible
    assert by["calibrated + gain-aware"].starts == {"x": "nano"}
    assert by["oracle (cheapest right tier)"].equivalent_cost == Decimal("0.020")


def test_replay_with_a_confidence_gate_sends_the_unsure_cases_up() -> None:
    """nano 60% right, sure (0.9) where right and unsure (0.3) where wrong; mini always
    right: the gated start keeps all-mini's accuracy at nano's price plus 40% of mini's."""
    outcomes, split = [], {}
    for i in range(40):
        case = f"c{i}"
        split[case] = "calibrate" if i % 2 == 0 else "report"
        right = (i // 2) % 5 < 3
        nano = _outcome(case, "x", "nano", None if right else "wrong", "0.001")
        outcomes += [{**nano, "confidence": 0.9 if right else 0.3},
                     _outcome(case, "x", "mini", None, "0.004")]  # fmt: skip
    by = {s.name: s for s in replay(outcomes, split)}
    plain, gated = by["calibrated + gain-aware"], by["calibrated + confidence gate + gain-aware"]
    assert plain.starts == {"x": "mini"}  # nano's 60% is under the floor
    assert gated.starts == {"x": "nano gated < 0.60"}
    assert (gated.successes, gated.escalations) == (20, 8)
    assert gated.equivalent_cost == Decimal("0.020") + 8 * Decimal("0.004")
    assert gated.equivalent_cost < plain.equivalent_cost == Decimal("0.080")


def _full(case: str, tier: str, ok: bool) -> dict[str, Any]:
    model = {"nano": "qwen2.5-coder-0.5b", "mini": "qwen2.5-coder-1.5b"}[tier]
    return {**_outcome(case, "simple_python", tier, None if ok else "wrong", "0.001"),
            "model": model, "detail": "", "input_tokens": 600, "output_tokens": 40,
            "latency_s": 2.0, "turns": 2, "output": "ok"}  # fmt: skip


def test_merge_joins_chunks_and_a_later_chunk_wins(tmp_path: Path) -> None:
    # later in the order given, whatever the names: "a-fill" sorts first but comes last
    first, second = tmp_path / "b-nano", tmp_path / "a-fill"
    for d, rows in ((first, [_full("c0", "nano", False), _full("c1", "nano", True)]),
                    (second, [_full("c0", "nano", True), _full("c0", "mini", True)])):  # fmt: skip
        d.mkdir()
        (d / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "machine.txt").write_text("before load average: 1.0\n")
    merge(str(tmp_path / "all"), [str(first), str(second)])
    results = json.loads((tmp_path / "all" / "results.json").read_text())
    by_tier = {t["tier"]: (t["n"], t["successes"]) for t in results["tiers"]}
    assert by_tier == {"nano": (2, 2), "mini": (1, 1)}  # c0 on nano: the fill's row
    calibration = json.loads((tmp_path / "all" / "calibration.json").read_text())
    (entry,) = calibration["entries"].values()
    assert entry["categories"]["simple_python"]["nano"]["n"] == 2
    assert (tmp_path / "all" / "machine.txt").read_text().splitlines() == [
        "b-nano: before load average: 1.0",
        "a-fill: before load average: 1.0",
    ]


def test_separation_is_the_chance_a_right_answer_was_surer_than_a_wrong_one() -> None:
    from bench.bfcl.confidence import separation, separation_table

    assert separation([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert separation([0.5], [0.5]) == 0.5
    assert separation([0.2], [0.9, 0.1]) == 0.5
    assert separation([0.9], []) is None
    rows = [{**_outcome("a", "x", "nano", None, "0"), "confidence": 0.9},
            {**_outcome("b", "x", "nano", "wrong", "0"), "confidence": 0.3},
            {**_outcome("c", "x", "nano", "model_error", "0"), "confidence": None}]  # fmt: skip
    table = separation_table(rows, ["nano", "mini"])
    assert "x | nano | 1 | 1 | 1 | 0.90 | 0.30 | 1.00" in table
    assert "mini" not in table  # no confidences reported there


def test_a_gate_sweep_draws_the_frontier_on_the_report_half() -> None:
    from bench.bfcl.confidence import gate_sweep

    outcomes, split = [], {}
    for i, (conf, nano_ok) in enumerate([(0.9, True), (0.3, False), (0.6, True), (0.2, True)]):
        split[f"c{i}"] = "report"
        nano = _outcome(f"c{i}", "x", "nano", None if nano_ok else "wrong", "0.001")
        outcomes += [{**nano, "confidence": conf}, _outcome(f"c{i}", "x", "mini", None, "0.004")]
    rows = gate_sweep(outcomes, split, gates=(0.0, 0.5, 1.01))
    assert [(g, right, up) for g, right, _, _, up in rows] == [(0.0, 3, 0), (0.5, 4, 2),
                                                                (1.01, 4, 4)]  # fmt: skip
    assert rows[1][3] == pytest.approx((0.004 + 2 * 0.004) / 0.016)
