"""The ready-made agents in `tiered.agents`, driven by scripted models."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

import tiered.agents
from tiered import (
    Agent,
    AgentCheck,
    Ledger,
    ModelRequest,
    Orchestrator,
    OutputInvalid,
    Plan,
    RunStatus,
    Subtask,
    Tier,
    UserMessage,
    default_catalog,
)
from tiered.agents import (
    Classification,
    Classifier,
    Extraction,
    Extractor,
    Ranking,
    Reranker,
    Summarizer,
    Summary,
    Verdict,
    Verifier,
)
from tiered.models import Model, ScriptedModel, ScriptStep

pytestmark = pytest.mark.anyio


def sent_input(model: ScriptedModel) -> Any:
    """The JSON input the agent sent as its first user message."""
    first = model.requests[0].messages[1]
    assert isinstance(first, UserMessage)
    return json.loads(first.content)


def repair_prompt(model: ScriptedModel) -> str:
    """The repair prompt of the last request."""
    last = model.requests[-1].messages[-1]
    assert isinstance(last, UserMessage)
    return last.content


def test_exports_are_pinned() -> None:
    assert tiered.agents.__all__ == (
        "Candidate",
        "Classification",
        "Classifier",
        "ClassifyInput",
        "ExtractInput",
        "ExtractedField",
        "Extraction",
        "Extractor",
        "FieldSpec",
        "RankedCandidate",
        "Ranking",
        "RerankInput",
        "Reranker",
        "SummarizeInput",
        "Summarizer",
        "Summary",
        "Verdict",
        "Verifier",
        "VerifyInput",
    )


def test_names_tiers_and_descriptions() -> None:
    agents: list[Agent[Any]] = [Classifier(), Extractor(), Reranker(), Summarizer(), Verifier()]
    assert [(a.name, a.tier) for a in agents] == [
        ("Classifier", Tier.NANO),
        ("Extractor", Tier.NANO),
        ("Reranker", Tier.NANO),
        ("Summarizer", Tier.NANO),
        ("Verifier", Tier.MINI),
    ]
    for agent in agents:
        assert agent.description
        assert len(agent.instructions) > 200
        assert agent.output_schema is not None
        assert agent.input_schema["type"] == "object"


# --- Classifier -----------------------------------------------------------------------

TICKET = {"text": "I was charged twice this month.", "labels": ["billing", "shipping", "other"]}


async def test_classifier() -> None:
    model = ScriptedModel([{"label": "billing", "confidence": 0.93, "reason": "double charge"}])
    result = await Classifier().run(TICKET, model=model)
    assert result.output == Classification(label="billing", confidence=0.93, reason="double charge")
    assert result.turns == 1
    assert sent_input(model) == {**TICKET, "guidance": None}
    schema = model.requests[0].output_schema
    assert schema is not None
    assert schema.schema["required"] == ["label", "confidence", "reason"]


async def test_classifier_repairs_a_label_not_in_the_list() -> None:
    model = ScriptedModel(
        [
            {"label": "payments", "confidence": 0.8, "reason": "a charge"},
            {"label": "billing", "confidence": 0.8, "reason": "a charge"},
        ]
    )
    result = await Classifier().run(TICKET, model=model)
    assert result.output.label == "billing"
    assert result.turns == 2
    prompt = repair_prompt(model)
    assert "'payments' is not one of the allowed labels" in prompt
    assert "'billing', 'shipping', 'other'" in prompt


async def test_classifier_fixes_case_and_spacing_without_a_turn() -> None:
    model = ScriptedModel([{"label": " Billing ", "confidence": 0.7, "reason": "charge"}])
    result = await Classifier().run(TICKET, model=model)
    assert (result.output.label, result.turns) == ("billing", 1)


async def test_classifier_gives_up_after_the_repair_turns() -> None:
    wrong = {"label": "refund", "confidence": 0.5, "reason": "?"}
    model = ScriptedModel([wrong, wrong, wrong])
    with pytest.raises(OutputInvalid, match="not one of the allowed labels"):
        await Classifier().run(TICKET, model=model)


async def test_classifier_rejects_out_of_range_confidence() -> None:
    model = ScriptedModel(
        [
            {"label": "other", "confidence": 7, "reason": "x"},
            {"label": "other", "confidence": 0.7, "reason": "x"},
        ]
    )
    result = await Classifier().run(TICKET, model=model)
    assert result.output.confidence == 0.7
    assert "confidence" in repair_prompt(model)


@pytest.mark.parametrize(
    "labels", [["only"], ["a", "A"], ["a", " "]], ids=["one", "duplicate", "blank"]
)
async def test_classifier_input_is_validated(labels: list[str]) -> None:
    with pytest.raises(ValidationError):
        await Classifier().run({"text": "x", "labels": labels}, model=ScriptedModel([]))


async def test_concurrent_runs_keep_their_own_labels() -> None:
    """One Classifier instance, two runs at once: each checks against its own labels."""
    classifier = Classifier()
    outputs: dict[str, str] = {}

    def answer(label: str) -> dict[str, Any]:
        return {"label": label, "confidence": 0.9, "reason": "r"}

    async def classify(key: str, labels: list[str], script: list[Any]) -> None:
        model = ScriptedModel(script)
        result = await classifier.run({"text": key, "labels": labels}, model=model)
        outputs[key] = result.output.label

    async with anyio.create_task_group() as tg:
        # "dog" is valid for the second run only; the first must be repaired
        tg.start_soon(classify, "colours", ["red", "blue"], [answer("dog"), answer("red")])
        tg.start_soon(classify, "animals", ["cat", "dog"], [answer("dog")])
    assert outputs == {"colours": "red", "animals": "dog"}


def test_run_input_outside_a_run() -> None:
    with pytest.raises(RuntimeError, match="outside its run"):
        Classifier().run_input()


async def test_classifier_validator_called_directly_needs_the_run() -> None:
    """`validate_output` reads the run's input; outside a run it says so instead of passing."""
    output = Classification(label="x", confidence=1, reason="r")
    ctx: Any = None
    with pytest.raises(RuntimeError):
        await Classifier().validate_output(output, ctx)


# --- Extractor ------------------------------------------------------------------------

INVOICE = {
    "text": "Invoice 2024-117 from Acme Ltd, total 1,250 EUR, paid: yes.",
    "fields": [
        {"name": "invoice_number", "description": "as printed"},
        {"name": "vendor"},
        "total",
        {"name": "paid", "description": "true or false"},
        {"name": "due_date", "description": "ISO 8601"},
    ],
}


async def test_extractor_fills_missing_fields_with_null_in_request_order() -> None:
    model = ScriptedModel(
        [
            {
                "fields": [
                    {"name": "total", "value": 1250},
                    {"name": "paid", "value": True},
                    {"name": "vendor", "value": "Acme Ltd"},
                    {"name": "invoice_number", "value": "2024-117"},
                ]
            }
        ]
    )
    result = await Extractor().run(INVOICE, model=model)
    assert isinstance(result.output, Extraction)
    assert result.output.as_dict() == {
        "invoice_number": "2024-117",
        "vendor": "Acme Ltd",
        "total": 1250,
        "paid": True,
        "due_date": None,
    }
    assert type(result.output.as_dict()["total"]) is int
    assert sent_input(model)["fields"][2] == {"name": "total", "description": ""}


async def test_extractor_repairs_unknown_and_repeated_fields() -> None:
    model = ScriptedModel(
        [
            {"fields": [{"name": "customer", "value": "x"}]},
            {"fields": [{"name": "vendor", "value": "Acme"}, {"name": "vendor", "value": "Acme"}]},
            {"fields": [{"name": "vendor", "value": "Acme Ltd"}]},
        ]
    )
    extractor = Extractor(max_repairs=3)
    result = await extractor.run(INVOICE, model=model)
    assert result.output.as_dict()["vendor"] == "Acme Ltd"
    prompts = [r.messages[-1] for r in model.requests[1:]]
    assert "'customer' was not requested" in str(prompts[0])
    assert "'vendor' appears twice" in str(prompts[1])


async def test_extractor_input_needs_distinct_fields() -> None:
    with pytest.raises(ValidationError, match="distinct"):
        await Extractor().run({"text": "x", "fields": ["a", "a"]}, model=ScriptedModel([]))


# --- Reranker -------------------------------------------------------------------------

DOCS = {
    "query": "how do I reset my password?",
    "candidates": [
        {"id": "d1", "text": "Our office hours are 9 to 5."},
        {"id": "d2", "text": "To reset your password, open Settings > Security."},
        {"id": "d3", "text": "Passwords must have 12 characters."},
    ],
}


async def test_reranker_orders_by_score_and_ranks_missing_last() -> None:
    model = ScriptedModel([{"ranked": [{"id": "d3", "score": 0.4}, {"id": "d2", "score": 0.95}]}])
    result = await Reranker().run(DOCS, model=model)
    assert isinstance(result.output, Ranking)
    assert result.output.ids() == ["d2", "d3", "d1"]
    assert [r.score for r in result.output.ranked] == [0.95, 0.4, 0.0]


async def test_reranker_top_k() -> None:
    model = ScriptedModel([{"ranked": [{"id": "d2", "score": 0.9}, {"id": "d3", "score": 0.5}]}])
    result = await Reranker().run({**DOCS, "top_k": 1}, model=model)
    assert result.output.ids() == ["d2"]


async def test_reranker_repairs_unknown_ids() -> None:
    model = ScriptedModel(
        [
            {"ranked": [{"id": "doc-2", "score": 0.9}]},
            {"ranked": [{"id": "d2", "score": 0.9}, {"id": "d2", "score": 0.8}]},
            {"ranked": [{"id": "d2", "score": 0.9}]},
        ]
    )
    result = await Reranker(max_repairs=3).run(DOCS, model=model)
    assert result.output.ids()[0] == "d2"
    assert "'doc-2' is not a candidate id" in str(model.requests[1].messages[-1])
    assert "'d2' appears twice" in str(model.requests[2].messages[-1])


# --- Summarizer -----------------------------------------------------------------------


async def test_summarizer() -> None:
    model = ScriptedModel([{"summary": "Sales rose 10% in Q3."}])
    result = await Summarizer().run({"text": "Long report ...", "max_words": 10}, model=model)
    assert result.output == Summary(summary="Sales rose 10% in Q3.")
    assert sent_input(model) == {"text": "Long report ...", "max_words": 10, "focus": None}


async def test_summarizer_repairs_a_summary_over_the_limit() -> None:
    model = ScriptedModel(
        [{"summary": "one two three four five six seven"}, {"summary": "one two three"}]
    )
    result = await Summarizer().run({"text": "t", "max_words": 5}, model=model)
    assert result.output.summary == "one two three"
    assert "has 7 words; the limit is 5" in repair_prompt(model)


async def test_summarizer_repairs_an_empty_summary() -> None:
    model = ScriptedModel([{"summary": "  "}, {"summary": "Fine."}])
    result = await Summarizer().run({"text": "t", "max_words": 5}, model=model)
    assert result.output.summary == "Fine."
    assert "empty" in repair_prompt(model)


# --- Verifier -------------------------------------------------------------------------


async def test_verifier_pass_and_fail() -> None:
    model = ScriptedModel(
        [
            {"verdict": "pass", "problems": []},
            {"verdict": "fail", "problems": ["The total is 1250, not 125."]},
        ],
        tier=Tier.MINI,
    )
    task = {"task": "Sum the invoice lines", "output": {"total": 125}, "criteria": ["exact"]}
    passed = await Verifier().run(task, model=model)
    assert passed.output == Verdict(verdict="pass", problems=[])
    assert passed.output.passed
    assert passed.tier is Tier.MINI
    failed = await Verifier().run(task, model=model)
    assert not failed.output.passed
    assert failed.output.problems == ["The total is 1250, not 125."]
    assert sent_input(model)["output"] == {"total": 125}


async def test_verifier_fail_needs_a_problem() -> None:
    model = ScriptedModel(
        [{"verdict": "fail", "problems": []}, {"verdict": "fail", "problems": ["Wrong sum."]}]
    )
    result = await Verifier().run({"task": "t", "output": "o"}, model=model)
    assert result.output.problems == ["Wrong sum."]
    assert "must list at least one problem" in repair_prompt(model)


async def test_verifier_plugs_into_agent_check() -> None:
    """The orchestrator's `AgentCheck` sends `task` and `output` and reads `passed`."""
    model = ScriptedModel([{"verdict": "fail", "problems": ["Missing the date.", "Wrong sum."]}])
    check = AgentCheck(Verifier())
    subtask = Subtask(id="s1", agent="Extractor", instructions="Extract the date and sum")
    reason = await check.check(
        subtask, Extraction(fields=[]), models={Tier.MINI: model}, ledger=Ledger()
    )
    assert reason == "Missing the date.; Wrong sum."
    assert sent_input(model) == {
        "task": "Extract the date and sum",
        "output": '{"fields": []}',
        "criteria": [],
    }


async def test_ready_agents_in_an_orchestrated_run() -> None:
    """Classifier as an executor, Verifier as its check: a rejection, then a pass."""
    verdicts = iter(
        [
            {"verdict": "fail", "problems": ["The reason does not cite the text."]},
            {"verdict": "pass", "problems": []},
        ]
    )
    labels = iter(["refund", "billing", "billing"])

    def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["agent"] == "Verifier":
            return next(verdicts)
        return {"label": next(labels), "confidence": 0.9, "reason": "charged twice"}

    cat = default_catalog()
    models: dict[Tier, Model] = {t: ScriptedModel(responder, spec=cat.for_tier(t)) for t in Tier}
    orchestrator = Orchestrator(
        [Classifier()], models=models, verify={"Classifier": AgentCheck(Verifier())}
    )
    plan = Plan(
        subtasks=(
            Subtask(id="triage", agent="Classifier", instructions="Triage", arguments=TICKET),
        )
    )
    result = await orchestrator.run("triage the ticket", plan=plan, compose=False)
    assert result.status is RunStatus.SUCCEEDED
    output = result.outputs["triage"]
    assert isinstance(output, Classification)
    assert output.label == "billing"
    assert len(result.subtasks["triage"].attempts) == 2
