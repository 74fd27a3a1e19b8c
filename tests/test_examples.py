"""Every example in examples/, run on the scripted model (and a few on the embedded ladder).

The scripted model answers as each agent would, sometimes wrongly on purpose, so each
test checks what the example promises: typed output, a verifier catching a bad answer
and the policy escalating it, the answer check catching a made-up number.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tiered import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    Orchestrator,
    RunResult,
    RunStatus,
    ScriptedModel,
    SubtaskStatus,
    Tier,
    ToolResultMessage,
    Usage,
    UserMessage,
    default_catalog,
)
from tiered._workflow import Workflow, load_workflow
from tiered.models import Model, ScriptStep, call, models_from_env

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str) -> ModuleType:
    """Import examples/<name>.py as a module."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"tiered_example_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ladder(responder: Any) -> dict[Tier, Model]:
    cat = default_catalog()
    return {t: ScriptedModel(responder, spec=cat.for_tier(t)) for t in Tier}


def agent_of(request: ModelRequest) -> str:
    return str(request.metadata.get("agent", ""))


def sid_of(request: ModelRequest) -> str:
    return str(request.metadata.get("subtask_id", ""))


def user_text(request: ModelRequest) -> str:
    return "\n".join(m.content for m in request.messages if isinstance(m, UserMessage))


def tool_result(request: ModelRequest) -> dict[str, Any] | None:
    last = request.messages[-1]
    return json.loads(last.content) if isinstance(last, ToolResultMessage) else None


def served_by(models: dict[Tier, Model], sid: str) -> list[Tier]:
    """The tiers that got a request for subtask `sid`, in tier order."""
    return [
        t
        for t, m in models.items()
        if isinstance(m, ScriptedModel) and any(sid_of(r) == sid for r in m.requests)
    ]


async def run_workflow(workflow: Workflow, models: dict[Tier, Model]) -> RunResult:
    orchestrator = Orchestrator(
        workflow.executors,
        planner=workflow.planner,
        models=models,
        verify=workflow.verify,
        answer_check=workflow.answer_check,
    )
    return await orchestrator.run(
        workflow.goal, deps=workflow.deps, output_type=workflow.output_type
    )


def answer_problem(workflow: Workflow, result: RunResult) -> str | None:
    assert workflow.answer_check is not None
    return workflow.answer_check(result.final_answer, result.outputs)


def test_every_example_says_what_it_shows_and_is_tested_here() -> None:
    here = Path(__file__).parent
    source = "".join(p.read_text() for p in sorted(here.glob("test_*.py")))
    for path in sorted(EXAMPLES.glob("*.py")):
        text = path.read_text()
        assert text.startswith('"""'), f"{path.name} needs a module docstring"
        assert "Shows" in text.split('"""')[1], f"{path.name}: say what it shows"
        assert f'example("{path.stem}")' in source or f'"{path.stem}.py"' in source, path.name


# --- triage (the README's example) ------------------------------------------------------

TRIAGE_PLAN = {
    "subtasks": [
        {
            "id": f"triage_{n}",
            "agent": "TicketTriage",
            "arguments": {"ticket": ticket},
        }
        for n, ticket in (
            (1, "My kettle, order A-1001, arrived two weeks late. I want my money back."),
            (2, "Where is my toaster? Order A-1002."),
        )
    ]
    + [
        {
            "id": f"check_{n}",
            "agent": "OrderCheck",
            "arguments": {"order_id": f"A-100{n}"},
        }
        for n in (1, 2)
    ]
    + [
        {
            "id": "refund",
            "agent": "RefundMath",
            "arguments": {"order_ids": ["A-1001", "A-1002"]},
        }
    ],
}


def triage_responder(answer: dict[str, Any]) -> Any:
    """Answers as each triage agent would; nano first reports the wrong order id once."""
    wrong_once: set[str] = set()

    def respond(request: ModelRequest) -> ScriptStep:
        agent, sid, text = agent_of(request), sid_of(request), user_text(request)
        if agent == "planner":
            return TRIAGE_PLAN
        if agent == "planner.compose":
            return answer
        if agent == "TicketTriage":
            order = re.findall(r"A-\d{4}", text)[-1]
            if sid == "triage_2" and sid not in wrong_once:
                wrong_once.add(sid)
                order = "A-1001"  # a cheap model's slip; the verifier must catch it
            kind = "refund" if "money back" in text else "shipping"
            if sid == "triage_1" and sid not in wrong_once:
                wrong_once.add(sid)
                kind = "question"  # seen on the embedded nano; the verifier must catch it
            return {"category": kind, "order_id": order}
        # the tool's result is these agents' output (`output_tool`): one turn, one call
        assert tool_result(request) is None, f"{agent} was asked to copy its tool's result"
        if agent == "OrderCheck":
            return call("lookup_order", {"order_id": re.findall(r"A-\d{4}", text)[-1]})
        if agent == "RefundMath":
            return call("refund_total", {"order_ids": ["A-1001", "A-1002"]})
        raise AssertionError(f"unexpected agent {agent}")

    return respond


async def test_triage_gets_3499_and_its_verifier_catches_a_wrong_order_id() -> None:
    workflow = load_workflow(EXAMPLES / "triage.py")
    answer = {
        "total_refund_cents": 3499,
        "refunded_orders": ["A-1001"],
        "summary": "The total refund owed is 3,499 cents (order A-1001).",
    }
    models = ladder(triage_responder(answer))
    result = await run_workflow(workflow, models)

    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs["refund"].total_cents == 3499
    assert result.outputs["refund"].refunded == ["A-1001"]
    assert result.subtasks["triage_2"].tier_path == [Tier.NANO, Tier.MINI]
    assert result.subtasks["triage_2"].attempts[0].outcome == "verifier_rejected"
    assert result.outputs["triage_2"].order_id == "A-1002"
    assert result.subtasks["triage_1"].tier_path == [Tier.NANO, Tier.MINI]
    assert "its category is refund, not question" in (
        result.subtasks["triage_1"].attempts[0].error or ""
    )
    assert result.outputs["triage_1"].category == "refund"
    assert result.final_answer.total_refund_cents == 3499
    assert answer_problem(workflow, result) is None
    scripted = [m for m in models.values() if isinstance(m, ScriptedModel)]
    offered = {agent_of(r): {t.name for t in r.tools} for m in scripted for r in m.requests}
    assert offered["OrderCheck"] == {"lookup_order"}  # no escalate tool to hide behind
    assert offered["RefundMath"] == {"refund_total"}
    assert offered["TicketTriage"] == set()  # tool_choice none: escalate is not offered
    for sid in ("check_1", "check_2", "refund"):  # each a single call: no copying turn
        assert result.subtasks[sid].attempts[0].usage.requests == 1


async def test_triage_answer_check_names_the_made_up_total() -> None:
    workflow = load_workflow(EXAMPLES / "triage.py")
    made_up = {
        "total_refund_cents": 3499,
        "refunded_orders": ["A-1001", "A-1002"],
        "summary": "The total refund owed is 200 cents, as both orders arrived late.",
    }
    result = await run_workflow(workflow, ladder(triage_responder(made_up)))
    assert result.status is RunStatus.ANSWER_REJECTED
    assert {r.status for r in result.subtasks.values()} == {SubtaskStatus.SUCCEEDED}
    assert result.error is not None
    assert "'200 cents'" in result.error
    assert "refund.total_cents=3499" in result.error
    assert result.error == f"the final answer failed its check: {answer_problem(workflow, result)}"


async def test_triage_answer_check_catches_wrong_orders_and_ids_from_nowhere() -> None:
    triage = example("triage")
    refund = triage.refund_owed(triage.ORDERS, ["A-1001", "A-1002"])
    partial = triage.refund_owed(triage.ORDERS, ["A-1002"])
    outputs = {"one": partial, "all": refund}

    def answer(refunded: list[str], summary: str) -> object:
        return triage.RefundAnswer(
            total_refund_cents=3499, refunded_orders=refunded, summary=summary
        )

    right = answer(["A-1001"], "3499 cents for A-1001; A-1002 was on time.")
    assert triage.answer_matches_refund(right, outputs) is None
    assert triage.answer_matches_refund(answer(["A-1001", "A-1002"], "3499 cents."), outputs) == (
        "refunded_orders is ['A-1001', 'A-1002'], but all refunded ['A-1001']"
    )
    assert triage.answer_matches_refund(answer(["A-1001"], "3499 cents; A-1004 not."), outputs) == (
        "the summary names A-1004, which no ticket mentions"
    )
    kettle = triage.OrderFacts(order_id="A-1001", item="kettle", price_cents=3499, days_late=0)
    copied_a_price = {"check": kettle, "one": partial}  # 3499 is a price here, not a refund
    assert triage.answer_matches_refund(right, copied_a_price) == (
        "total_refund_cents is 3499, but one says 0"
    )


def test_triage_answer_check_wants_the_total_in_the_summary() -> None:
    triage = example("triage")
    outputs = {"all": triage.refund_owed(triage.ORDERS, ["A-1001", "A-1002"])}

    def check(summary: str) -> str | None:
        answer = triage.RefundAnswer(
            total_refund_cents=3499, refunded_orders=["A-1001"], summary=summary
        )
        return triage.answer_matches_refund(answer, outputs)  # type: ignore[no-any-return]

    for said in ("3499 cents for A-1001.", "A total of 3,499 cents.", "$34.99, for A-1001."):
        assert check(said) is None, said
    for silent in ("Refund math failed.", "Refunding A-1001 because it arrived late."):
        assert check(silent) == "the summary must state the total refund (3499 cents)", silent
    nothing = {"all": triage.refund_owed(triage.ORDERS, ["A-1002"])}
    on_time = triage.RefundAnswer(
        total_refund_cents=0, refunded_orders=[], summary="No refund: A-1002 was on time."
    )
    assert triage.answer_matches_refund(on_time, nothing) is None


def test_triage_answer_check_adds_up_one_refund_per_order() -> None:
    triage = example("triage")
    outputs = {
        "r1": triage.refund_owed(triage.ORDERS, ["A-1001"]),
        "r3": triage.refund_owed(triage.ORDERS, ["A-1003"]),
        "r3_again": triage.refund_owed(triage.ORDERS, ["A-1003"]),
    }
    both = triage.RefundAnswer(
        total_refund_cents=3499 + 5999,
        refunded_orders=["A-1003", "A-1001"],
        summary="9498 cents for A-1001 and A-1003.",
    )
    assert triage.answer_matches_refund(both, outputs) is None
    one = both.model_copy(update={"total_refund_cents": 5999})
    assert triage.answer_matches_refund(one, outputs) == (
        "total_refund_cents is 5999, but r1 + r3 says 9498"
    )


def test_the_planner_reads_the_workflows_notes_after_the_catalog() -> None:
    workflow = load_workflow(EXAMPLES / "triage.py")
    assert workflow.planner is not None
    executors = {a.name: a for a in workflow.executors}
    prompt = workflow.planner._planning_agent(executors).instructions
    assert prompt.endswith("For this workflow: " + example("triage").PLANNING_NOTES)
    assert prompt.index("Executor agents") < prompt.index("For this workflow")


def test_the_refund_rule_and_its_verifier() -> None:
    triage = example("triage")
    owed = triage.refund_owed(triage.ORDERS, ["a-1001", "A-1002", "A-1003", "B-1"])
    assert owed == triage.Refund(
        total_cents=3499 + 5999, refunded=["A-1001", "A-1003"], on_time=["A-1002"], unknown=["B-1"]
    )
    subtask = triage.Subtask(
        id="r", agent="RefundMath", instructions="x", arguments={"order_ids": ["A-1001", "A-1002"]}
    )
    right = triage.refund_owed(triage.ORDERS, ["A-1001", "A-1002"])
    assert triage.refund_matches_rule(subtask, right) is None
    rejection = triage.refund_matches_rule(
        subtask, right.model_copy(update={"total_cents": 6098, "refunded": ["A-1001", "A-1002"]})
    )
    assert rejection == "total_cents 6098 but refund_total gives 3499"
    other = triage.Subtask(
        id="c", agent="OrderCheck", instructions="x", arguments={"order_id": "A-1002"}
    )
    facts = triage.OrderFacts(order_id="A-1001", item="kettle", price_cents=3499, days_late=14)
    assert triage.order_matches_database(other, facts) == (
        "the subtask asks about A-1002, but the output is for A-1001"
    )


# --- extract -----------------------------------------------------------------------------

CONTACTS = {
    "dana.whitfield@northwind.example": ("Dana Whitfield", "(555) 201-3344", "Northwind Traders"),
    "marco@bluefin.example": ("Marco Ruiz", "+1 555 887 1200", "Blue Fin Logistics"),
    "priya.n@mail.example": ("Priya N.", None, None),
}


async def test_extract_gives_typed_contacts_and_rejects_a_made_up_phone() -> None:
    extract = example("extract")
    guessed: set[str] = set()

    def respond(request: ModelRequest) -> ScriptStep:
        email = next(e for e in CONTACTS if e in user_text(request))
        name, phone, company = CONTACTS[email]
        if email.startswith("priya") and not guessed:
            guessed.add(email)
            phone = "555-0100"  # not in the text: the check must send it up a tier
        values = {"name": name, "email": email, "phone": phone, "company": company}
        return {"fields": [{"name": k, "value": v} for k, v in values.items()]}

    models = ladder(respond)
    result = await extract.main(models)

    assert result.status is RunStatus.SUCCEEDED
    contacts = extract.contacts(result)
    assert [c.email for c in contacts] == list(CONTACTS)
    assert contacts[0] == extract.Contact(
        name="Dana Whitfield",
        email="dana.whitfield@northwind.example",
        phone="(555) 201-3344",
        company="Northwind Traders",
    )
    assert contacts[2].phone is None
    assert served_by(models, "contact_3") == [Tier.NANO, Tier.MINI]
    first = result.subtasks["contact_3"].attempts[0]
    assert first.outcome == "verifier_rejected"
    assert "phone='555-0100'" in (first.error or "")
    shown = extract.show(result)
    assert "contact_3: nano > mini" in shown
    assert "at OpenAI prices (all-flagship: $" in shown


# --- rerank ------------------------------------------------------------------------------


async def test_rerank_puts_the_refund_passage_first() -> None:
    rerank = example("rerank")
    ranked = [{"id": "p2", "score": 0.95}, {"id": "p5", "score": 0.7}, {"id": "p4", "score": 0.2}]
    result = await rerank.main(ladder(lambda request: {"ranked": ranked}))
    assert result.output.ids() == ["p2", "p5", "p4"]
    assert result.tier is Tier.NANO
    lines = rerank.show(result).splitlines()
    assert lines[1] == f"1. p2 (0.95) {rerank.PASSAGES['p2']}"
    assert "gpt-5.4-nano (nano)" in lines[-1]


# --- custom agent ------------------------------------------------------------------------


async def test_custom_agent_calls_its_tool_and_reports_the_count() -> None:
    custom = example("custom_agent")

    def respond(request: ModelRequest) -> ScriptStep:
        found = tool_result(request)
        if found is None:
            return call("count_words", {"text": custom.TEXT})
        return {"words": found["words"]}

    result = await custom.main(ladder(respond))
    assert result.output.words == 9
    assert result.turns == 2
    assert custom.show(result).startswith(f"{custom.TEXT!r}: 9 words, right;")


# --- bulk summarize ----------------------------------------------------------------------


async def test_bulk_summarize_runs_1000_documents_on_nano_with_the_cache_share() -> None:
    bulk = example("bulk_summarize")
    retried: set[str] = set()

    def respond(request: ModelRequest) -> ScriptStep:
        sid = sid_of(request)
        words = 8
        if sid == "doc_0007" and sid not in retried:
            retried.add(sid)
            words = 40  # over the limit: the summarizer's own check asks again
        summary = " ".join(["word"] * words)
        return ModelResponse(
            message=AssistantMessage(content=json.dumps({"summary": summary})),
            usage=Usage(input_tokens=400, cached_input_tokens=300, output_tokens=20, requests=1),
            model_name="gpt-5.4-nano",
            finish_reason="stop",
        )

    models = ladder(respond)
    report = await bulk.main(models)

    assert report.result.status is RunStatus.SUCCEEDED
    assert report.documents == report.summarized == 1000
    assert report.result.usage.requests == 1001
    assert report.cached_share == 0.75
    assert served_by(models, "doc_0007") == [Tier.NANO]
    assert set(report.result.by_tier) == {Tier.NANO}
    assert report.result.counterfactual_cost > 5 * report.result.equivalent_cost
    lines = bulk.show(report).splitlines()
    assert lines[0].startswith("1000/1000 documents summarized (succeeded)")
    assert "(75% from the prompt cache)" in lines[2]
    assert re.search(
        r"\$\d+\.\d{4} on nano vs \$\d+\.\d{4} all-flagship \(\d+\.\dx cheaper\)", lines[3]
    )


def test_bulk_documents_are_deterministic_and_distinct() -> None:
    bulk = example("bulk_summarize")
    docs = bulk.documents(1000)
    assert docs == bulk.documents(1000)
    assert len(set(docs)) == 1000


# --- research report ---------------------------------------------------------------------


def research_responder(report: str) -> Any:
    """The planner decomposes; executors answer; Compare gets the gap wrong once on mini."""
    research = example("research_report")
    wrong_once: set[str] = set()

    def draft(sid: str, agent: str, arguments: dict[str, Any], *deps: str) -> dict[str, Any]:
        return {
            "id": sid,
            "agent": agent,
            "instructions": f"{agent} step",
            "arguments": arguments,
            "depends_on": list(deps),
            "plan_shaped": False,
            "stakes": "normal",
        }

    names = list(research.SOURCES)
    plan = {
        "subtasks": [
            *(
                draft(
                    f"extract_{i}",
                    "Extractor",
                    {
                        "text": research.SOURCES[n],
                        "fields": [
                            {"name": f, "description": ""}
                            for f in ("carrier", "on_time_percent", "price_cents")
                        ],
                    },
                )
                for i, n in enumerate(names, 1)
            ),
            *(
                draft(
                    f"summary_{i}",
                    "Summarizer",
                    {"text": research.SOURCES[n], "max_words": 20, "focus": None},
                )
                for i, n in enumerate(names, 1)
            ),
            draft("compare", "Compare", {"question": "Which carrier?"}, "extract_1", "extract_2"),
        ],
        "final_answer": "a recommendation with the numbers behind it",
    }

    def respond(request: ModelRequest) -> ScriptStep:
        agent, text = agent_of(request), user_text(request)
        if agent == "planner":
            return plan
        if agent == "planner.compose":
            return report
        if agent == "Extractor":
            name = next(n for n in names if n in text)
            on_time, price = research.FACTS[name]
            values = {"carrier": name, "on_time_percent": on_time, "price_cents": price}
            return {"fields": [{"name": k, "value": v} for k, v in values.items()]}
        if agent == "Summarizer":
            name = next(n for n in names if n in text)
            on_time, price = research.FACTS[name]
            return {"summary": f"{name}: {on_time}% on time, {price} cents a parcel."}
        if agent == "Compare":
            found = tool_result(request)
            if found is None:
                return call("calculator", {"expression": "850 - 620"})
            gap = 203 if not wrong_once else 230
            wrong_once.add("compare")
            return {
                "cheaper": "Budget Post",
                "price_difference_cents": gap,
                "more_punctual": "Swift Parcel",
                "recommendation": "Swift Parcel: 8 points more punctual for 230 cents more.",
            }
        raise AssertionError(f"unexpected agent {agent}")

    return respond


REPORT = (
    "Recommendation: Swift Parcel. It delivered 96% of orders on time against Budget Post's "
    "88%, for 230 cents more per parcel (850 vs 620 cents)."
)


async def test_research_report_is_planned_verified_and_composed() -> None:
    workflow = load_workflow(EXAMPLES / "research_report.py")
    models = ladder(research_responder(REPORT))
    result = await run_workflow(workflow, models)

    assert result.status is RunStatus.SUCCEEDED
    assert result.plan is not None
    assert [s.agent for s in result.plan.subtasks].count("Extractor") == 2
    assert {r.status for r in result.subtasks.values()} == {SubtaskStatus.SUCCEEDED}
    compare = result.subtasks["compare"]
    assert compare.tier_path == [Tier.MINI, Tier.FLAGSHIP]
    assert compare.attempts[0].outcome == "verifier_rejected"
    assert "230 cents, not 203" in (compare.attempts[0].error or "")
    assert result.outputs["compare"].price_difference_cents == 230
    assert served_by(models, "extract_1") == [Tier.NANO]
    assert result.final_answer == REPORT
    assert answer_problem(workflow, result) is None


async def test_research_report_answer_check_catches_a_number_from_nowhere() -> None:
    workflow = load_workflow(EXAMPLES / "research_report.py")
    wrong = REPORT.replace("230 cents more", "250 cents more")
    result = await run_workflow(workflow, ladder(research_responder(wrong)))
    assert result.status is RunStatus.ANSWER_REJECTED
    assert "'250 cents'" in (result.error or "")


# --- on the embedded ladder (the `local` extra; minutes on two cores) --------------------


@pytest.mark.local_model
async def test_extract_on_the_embedded_ladder() -> None:
    extract = example("extract")
    result = await extract.main(models_from_env())
    print(extract.show(result))  # what the README shows, with -s
    assert set(result.subtasks) == {"contact_1", "contact_2", "contact_3"}
    for sid, output in result.outputs.items():
        assert extract.values_in_text(result.subtasks[sid].subtask, output) is None
    assert result.usage.input_tokens > 0
    assert result.cost == 0
    assert result.equivalent_cost > 0


@pytest.mark.local_model
async def test_rerank_on_the_embedded_ladder() -> None:
    rerank = example("rerank")
    result = await rerank.main(models_from_env())
    print(rerank.show(result))
    assert 1 <= len(result.output.ranked) <= 3
    assert set(result.output.ids()) <= set(rerank.PASSAGES)
    assert result.tier is Tier.NANO
    assert result.usage.output_tokens > 0


@pytest.mark.local_model
async def test_custom_agent_on_the_embedded_ladder() -> None:
    custom = example("custom_agent")
    result = await custom.main(models_from_env())
    print(custom.show(result))
    assert result.turns >= 2  # the tool was called before the answer
    assert result.output.words >= 0
    assert result.model == "qwen2.5-coder-0.5b"


@pytest.mark.local_model
async def test_bulk_summarize_on_the_embedded_ladder_with_a_limit() -> None:
    bulk = example("bulk_summarize")
    report = await bulk.main(models_from_env(), limit=3, concurrency=2)
    print(bulk.show(report))
    assert report.documents == 3
    for output in report.result.outputs.values():
        assert 0 < len(output.summary.split()) <= 20
    assert report.result.counterfactual_cost > report.result.equivalent_cost > 0
