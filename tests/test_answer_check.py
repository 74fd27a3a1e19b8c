"""The final-answer check: numbers in the answer must come from the work it was composed from."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from orchestration_support import Echo, ladder, last_user, subtask
from tiered import (
    ModelRequest,
    Orchestrator,
    Plan,
    RunStatus,
    check_numbers,
    numbers_from_outputs,
    states_amount,
)
from tiered._answer_check import numbers_in
from tiered._run import ANSWER_RETRIES


class OrderFacts(BaseModel):
    order_id: str
    price_cents: int
    days_late: int


class Refund(BaseModel):
    total_cents: int
    explanation: str


OUTPUTS = {
    "check1": OrderFacts(order_id="A-1001", price_cents=3499, days_late=14),
    "check2": OrderFacts(order_id="A-1002", price_cents=2599, days_late=0),
    "refund": Refund(total_cents=3499, explanation="only A-1001 was late"),
}


def test_numbers_are_read_without_separators_and_names_are_not_numbers() -> None:
    claims = numbers_in("Order A-1001 (gpt-5, 2nd try) cost $34.99; refund 3,499 cents, -5, 50%.")
    assert [(c.value, c.money, c.percent) for c in claims] == [
        (Decimal("34.99"), True, False),
        (Decimal("3499"), True, False),
        (Decimal("-5"), False, False),
        (Decimal("50"), False, True),
    ]


def test_the_right_answer_passes_in_any_spelling_of_the_number() -> None:
    for answer in (
        "The total refund owed is 3,499 cents: only A-1001 (14 days late) was late.",
        "Refund 3499 cents for order A-1001.",
        "Refund $34.99 (order A-1001, kettle); A-1002 arrived on time.",
        "Refund 34.99 dollars.",
    ):
        assert check_numbers(answer, OUTPUTS) is None, answer


def test_a_number_no_output_holds_is_named_with_what_was_available() -> None:
    problem = check_numbers(
        "The total refund owed is 200 cents, as both orders arrived late.", OUTPUTS
    )
    assert problem is not None
    assert "'200 cents'" in problem
    assert "both orders arrived late" in problem  # the claim, quoted
    assert "refund (Refund): " in problem
    assert "refund.total_cents=3499" in problem
    assert "check2 (OrderFacts): " in problem
    assert "check2.price_cents=2599" in problem


def test_every_unsupported_number_is_listed() -> None:
    problem = check_numbers("Refund 10136 cents, or 200 cents, or 3499 cents.", OUTPUTS)
    assert problem is not None
    assert "'10136 cents'" in problem
    assert "also unsupported: 200 cents" in problem


def test_whole_dollars_do_not_pass_for_odd_cents() -> None:
    assert check_numbers("Refund $35.", OUTPUTS) is not None
    assert check_numbers("Refund $35.00.", OUTPUTS) is not None
    assert check_numbers("Refund about $35.0.", OUTPUTS) is None  # rounded to what was written


def test_small_counts_are_not_claims_unless_asked() -> None:
    answer = "Of 2 tickets, 1 needed a refund of 3499 cents."
    assert check_numbers(answer, OUTPUTS) is None
    problem = check_numbers(answer, OUTPUTS, ignore_below=0)
    assert problem is not None
    assert "'2'" in problem


def test_rounded_decimals_and_percentages_match() -> None:
    outputs = {"stats": {"share": 0.4937, "cost_usd": 0.001234}}
    assert check_numbers("49.37% cached; cost $0.0012.", outputs) is None
    assert check_numbers("0.49 of tokens cached.", outputs) is None
    assert check_numbers("0.51 of tokens cached.", outputs) is not None


def test_tool_results_count_as_sources() -> None:
    assert check_numbers("The sum is 6098.", OUTPUTS) is not None
    assert check_numbers("The sum is 6098.", OUTPUTS, tool_results=[{"sum": 6098}]) is None


def test_a_structured_answer_is_checked_field_by_field() -> None:
    assert check_numbers(Refund(total_cents=3499, explanation="A-1001 late"), OUTPUTS) is None
    problem = check_numbers(Refund(total_cents=200, explanation="all late"), OUTPUTS)
    assert problem is not None
    assert "'answer.total_cents'" in problem


def test_where_each_number_was_found() -> None:
    found = numbers_from_outputs(OUTPUTS, tool_results=[[1, 2.5]])
    assert found[Decimal(3499)] == ["check1.price_cents", "refund.total_cents"]
    assert "check1.order_id" in found[Decimal(1001)]  # digits in a name are still available
    assert found[Decimal("2.5")] == ["tool[0][1]"]


@pytest.mark.parametrize(
    "text",
    [
        "Total refund owed: 3499 cents.",
        "Refund 3,499 for order A-1001.",
        "Refunded $34.99 for the kettle.",
        "The total is 34.99 USD.",
    ],
)
def test_a_text_states_an_amount_in_cents_or_dollars(text: str) -> None:
    assert states_amount(text, 3499)


@pytest.mark.parametrize(
    "text",
    [
        "Ticket 1: Refund math failed.",
        "Order A-3499 was late.",  # digits in a name are not an amount
        "Refund 34.99 for the kettle.",  # a bare 34.99 is neither cents nor money
        "Refund $35 for the kettle.",
        "Refund 200 cents.",
    ],
)
def test_a_text_without_the_amount_does_not_state_it(text: str) -> None:
    assert not states_amount(text, 3499)


@pytest.mark.parametrize("text", ["", "no numbers here", "order A-1001 and B-7"])
def test_nothing_to_check_passes(text: str) -> None:
    assert check_numbers(text, {}) is None


# --- the check in a run: one more compose with the check's words, then the verdict ---------


def _run_with_composer(answers: list[str]) -> tuple[Any, list[str]]:
    prompts: list[str] = []
    composed = iter(answers)

    def responder(request: ModelRequest) -> Any:
        system = str(request.messages[0].content)
        if "final answer of a run" in system:
            prompts.append(last_user(request))
            return next(composed)
        return {"text": "refund 3499 cents"}

    orch = Orchestrator([Echo()], models=ladder(responder), answer_check=check_numbers)
    plan = Plan(subtasks=(subtask("a"),))
    return anyio.run(lambda: orch.run("refund?", plan=plan)), prompts


def test_an_answer_its_check_rejects_is_written_again_with_the_reason() -> None:
    result, prompts = _run_with_composer(["Refund 250 cents.", "Refund 3499 cents."])
    assert result.status is RunStatus.SUCCEEDED
    assert result.final_answer == "Refund 3499 cents."
    outcomes = [a.outcome for a in result.planner_attempts]
    assert outcomes == ["answer_rejected", "recompose"]  # the report keeps why
    assert "'250 cents'" in (result.planner_attempts[0].error or "")
    assert [a.reason for a in result.planner_attempts] == ["compose", "recompose"]
    assert "rejected" not in prompts[0]
    assert "Your previous answer was rejected" in prompts[1]
    assert "'250 cents'" in prompts[1]


def test_an_answer_wrong_twice_is_answer_rejected_not_succeeded() -> None:
    result, prompts = _run_with_composer(["Refund 250 cents.", "Refund 200 cents."])
    assert result.status is RunStatus.ANSWER_REJECTED
    assert "'200 cents'" in (result.error or "")
    assert len(prompts) == 1 + ANSWER_RETRIES
    assert [a.outcome for a in result.planner_attempts] == ["answer_rejected"] * 2
