"""The seed bench's answer check and summary (bench/example_seeds.py), without a model."""

from __future__ import annotations

import pytest

from bench_support import load_bench

load_bench()

from bench.example_seeds import _parse_seeds, summarize, triage_total  # noqa: E402

OK = {"status": "succeeded"}


@pytest.mark.parametrize(
    ("answer", "right"),
    [
        ("The total refund owed is 3,499 cents (A-1001 was 14 days late).", True),
        ("Refund $34.99 for order A-1001.", True),
        ("The total refund owed is 200 cents.", False),
        ("A-1001: 3499 cents; total_cents 10136.", False),
    ],
)
def test_triage_total_judges_the_stated_total(answer: str, right: bool) -> None:
    assert (triage_total(answer, OK) is None) is right


RIGHT = {"total_refund_cents": 3499, "refunded_orders": ["A-1001"], "summary": "3499 cents."}


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (RIGHT, None),
        ({**RIGHT, "summary": "Refund $34.99 for A-1001."}, None),
        ({**RIGHT, "total_refund_cents": 6098}, "total_refund_cents 6098, not 3499"),
        ({**RIGHT, "refunded_orders": ["A-1001", "A-1002"]}, "refunded_orders"),
        ({**RIGHT, "summary": "3499 of 6098 cents."}, "also states [6098]"),
    ],
)
def test_a_typed_answer_must_have_exactly_the_right_total(
    answer: dict[str, object], why: str | None
) -> None:
    verdict = triage_total(answer, OK)
    assert verdict is None if why is None else (verdict or "").startswith(why)


def test_a_failed_run_is_never_right() -> None:
    verdict = triage_total("3,499 cents", {"status": "failed", "error": "boom"})
    assert verdict == "status failed: boom"


def test_summary_counts_right_runs_and_adds_up_the_time_per_tier() -> None:
    timing = {
        "model": "m",
        "tier": "nano",
        "agent": "a",
        "prompt_tokens": 100,
        "cached_tokens": 60,
        "prompt_ms": 500.0,
        "output_tokens": 10,
        "output_ms": 250.0,
    }
    results = [
        {"seed": 1, "process_wall_s": 40.0, "run": {**OK, "final_answer": "3,499 cents"}},
        {
            "seed": 2,
            "process_wall_s": 60.0,
            "run": {**OK, "final_answer": "200 cents"},
            "timings": [timing, timing],
        },
        {"seed": 3, "wall_s": 1.0, "error": "child exited 1"},
        {
            "seed": 4,
            "process_wall_s": 50.0,
            "run": {"status": "answer_rejected", "final_answer": {**RIGHT, "summary": "200"}},
        },
    ]
    summary = summarize(results, triage_total)
    assert (summary["right"], summary["runs"]) == (1, 4)
    assert (summary["honest"], summary["wrong"]) == (2, 1)  # a crash says no success either
    assert [row["right"] for row in summary["rows"]] == [True, False, False, False]
    assert [row["outcome"] for row in summary["rows"]] == ["right", "wrong", "honest", "honest"]
    assert summary["rows"][2]["why"] == "child exited 1"
    assert summary["by_tier"]["nano (m)"] == {
        "calls": 2,
        "prompt_tokens": 200,
        "cached_tokens": 120,
        "prompt_ms": 1000.0,
        "output_tokens": 20,
        "output_ms": 500.0,
    }
    assert _parse_seeds("1-3,7") == [1, 2, 3, 7]
