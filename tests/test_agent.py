"""The agent loop through its real seam: a `ScriptedModel` standing in for the provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from pydantic import BaseModel, Field, ValidationError

from tiered import (
    Agent,
    AgentResult,
    AssistantMessage,
    Budget,
    BudgetExceeded,
    EscalationRequested,
    Ledger,
    MaxTurnsExceeded,
    ModelRequest,
    ModelRetry,
    OutputInvalid,
    RunContext,
    ScriptedModel,
    SystemMessage,
    Tier,
    Tool,
    ToolResultMessage,
    Usage,
    UserMessage,
    default_catalog,
    tool,
)
from tiered.models import ScriptStep, call

pytestmark = pytest.mark.anyio

NANO = default_catalog()["gpt-5.4-nano"]


class Ticket(BaseModel):
    title: str
    body: str = ""


class Triage(BaseModel):
    category: str = Field(description="billing, bug or other")
    priority: int = Field(ge=1, le=5)
    tags: list[str] = []


class Triager(Agent[Triage]):
    """Sorts a support ticket."""

    instructions = "Triage the ticket."
    tier = Tier.MINI
    input_type = Ticket
    output_type = Triage
    max_repairs = 1


@dataclass
class Deps:
    prefix: str = ">"
    seen: list[tuple[int, int, str]] = field(default_factory=list)


class Echo(Tool):
    """Echo text back with the caller's prefix."""

    class Args(BaseModel):
        text: str

    async def run(self, args: Args, ctx: RunContext[Deps]) -> str:
        ctx.deps.seen.append((ctx.turn, ctx.usage.requests, ctx.agent))
        ctx.log.info("echo.used", text=args.text)
        return f"{ctx.deps.prefix}{args.text}"


# --- construction ---------------------------------------------------------------------


def test_subclass_takes_class_attributes_and_docstring() -> None:
    agent = Triager()
    assert agent.name == "Triager"
    assert agent.description == "Sorts a support ticket."
    assert agent.tier is Tier.MINI
    assert agent.output_schema is not None
    assert agent.output_schema["required"] == ["category", "priority", "tags"]
    assert agent.input_schema["required"] == ["title"]


def test_keywords_override_class_attributes() -> None:
    agent = Triager(name="triage", instructions="Be brief.", max_turns=3)
    assert (agent.name, agent.instructions, agent.max_turns) == ("triage", "Be brief.", 3)
    assert Triager.instructions == "Triage the ticket."


def test_built_from_keywords() -> None:
    agent = Agent(name="summarizer", instructions="Summarize in one line.", output_type=Triage)
    assert agent.name == "summarizer"
    assert agent.description == "Summarize in one line."
    assert agent.output_schema is not None
    assert Agent().name == "agent"
    assert Agent(instructions="x").output_schema is None


# --- a run ----------------------------------------------------------------------------


async def test_run_returns_typed_output_usage_cost_and_transcript() -> None:
    model = ScriptedModel(
        [call("echo", {"text": "hi"}), {"category": "bug", "priority": 2, "tags": None}],
        spec=NANO,
    )
    agent = Triager(tools=[Echo()])
    result = await agent.run({"title": "Crash"}, deps=Deps(), model=model)
    assert isinstance(result, AgentResult)
    assert result.output == Triage(category="bug", priority=2)
    assert result.agent == "Triager"
    assert result.model == "gpt-5.4-nano"
    assert result.tier is Tier.NANO
    assert result.turns == 2
    assert result.usage.requests == 2
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens > 0
    assert result.cost > 0
    assert result.cost == NANO.cost(result.usage)
    assert result.equivalent_cost == result.cost
    assert [type(m) for m in result.messages] == [
        SystemMessage,
        UserMessage,
        AssistantMessage,
        ToolResultMessage,
        AssistantMessage,
    ]
    assert result.messages[1] == UserMessage(content='{"title":"Crash","body":""}')
    model.assert_complete()


async def test_shared_ledger_adds_up_every_call() -> None:
    ledger = Ledger()
    agent = Agent(name="a")
    first = await agent.run("x", model=ScriptedModel(["one"], spec=NANO), ledger=ledger)
    second = await agent.run("y", model=ScriptedModel(["two"], spec=NANO), ledger=ledger)
    assert ledger.usage == first.usage + second.usage
    assert ledger.cost == first.cost + second.cost


async def test_structured_input_is_validated_before_any_model_call() -> None:
    model = ScriptedModel(["unused"])
    with pytest.raises(ValidationError, match="title"):
        await Triager().run({"body": "no title"}, model=model)
    with pytest.raises(ValidationError):
        await Triager().run('{"title": 5}', model=model)
    assert model.requests == []


async def test_input_as_model_instance_or_json_text() -> None:
    answer: ScriptStep = {"category": "other", "priority": 5, "tags": ["x"]}
    model = ScriptedModel([answer, answer])
    await Triager().run(Ticket(title="A"), model=model)
    await Triager().run('{"title": "B"}', model=model)
    assert [r.messages[1] for r in model.requests] == [
        UserMessage(content='{"title":"A","body":""}'),
        UserMessage(content='{"title":"B","body":""}'),
    ]


# --- repairs --------------------------------------------------------------------------


async def test_invalid_output_gets_a_repair_turn_naming_the_field() -> None:
    model = ScriptedModel(
        [
            {"category": "bug", "priority": "urgent", "tags": None},
            {"category": "bug", "priority": 1, "tags": None},
        ]
    )
    result = await Triager().run({"title": "t"}, model=model)
    assert result.output.priority == 1
    assert result.turns == 2
    repair = model.requests[1].messages[-1]
    assert isinstance(repair, UserMessage)
    assert "priority" in repair.content
    assert "'urgent' is not of type 'integer'" in repair.content


async def test_pydantic_constraint_violations_are_repaired_too() -> None:
    model = ScriptedModel(
        [
            {"category": "bug", "priority": 9, "tags": None},
            {"category": "bug", "priority": 5, "tags": None},
        ]
    )
    result = await Triager().run({"title": "t"}, model=model)
    assert result.output.priority == 5
    repair = model.requests[1].messages[-1]
    assert isinstance(repair, UserMessage)
    assert "priority" in repair.content


async def test_output_that_is_not_json_is_repaired() -> None:
    model = ScriptedModel(["Sure! Here it is:", {"category": "bug", "priority": 1, "tags": []}])
    result = await Triager().run({"title": "t"}, model=model)
    assert result.output.category == "bug"
    repair = model.requests[1].messages[-1]
    assert isinstance(repair, UserMessage)
    assert "not valid JSON" in repair.content


async def test_empty_text_output_is_repaired() -> None:
    model = ScriptedModel(["   ", "an answer"])
    result = await Agent(name="writer").run("write", model=model)
    assert result.output == "an answer"
    assert model.requests[1].messages[-1] == UserMessage(
        content="Your reply was empty. Answer the task."
    )


async def test_output_still_invalid_after_max_repairs() -> None:
    bad: ScriptStep = {"category": "bug", "priority": "high", "tags": None}
    model = ScriptedModel([bad, bad, bad], spec=NANO)
    with pytest.raises(OutputInvalid) as info:
        await Triager(max_repairs=2).run({"title": "t"}, model=model)
    exc = info.value
    assert len(model.requests) == 3
    assert "priority" in exc.errors
    assert "after 2 repair turns" in str(exc)
    assert exc.usage is not None
    assert exc.usage.requests == 3
    repairs = [m for m in exc.messages[2:] if isinstance(m, UserMessage)]
    assert len(repairs) == 2


class Strict(Triager):
    async def validate_output(self, output: Triage, ctx: RunContext[Deps]) -> Triage:
        if output.category not in ("billing", "bug", "other"):
            raise ModelRetry(f"category must be billing, bug or other, not {output.category!r}")
        return output


async def test_validate_output_hook_triggers_a_repair() -> None:
    model = ScriptedModel(
        [
            {"category": "complaint", "priority": 3, "tags": None},
            {"category": "other", "priority": 3, "tags": None},
        ]
    )
    result = await Strict().run({"title": "t"}, deps=Deps(), model=model)
    assert result.output.category == "other"
    assert model.requests[1].messages[-1] == UserMessage(
        content="category must be billing, bug or other, not 'complaint'"
    )


async def test_validate_output_hook_repairs_are_bounded() -> None:
    wrong: ScriptStep = {"category": "complaint", "priority": 3, "tags": None}
    with pytest.raises(OutputInvalid, match="complaint"):
        await Strict().run({"title": "t"}, model=ScriptedModel([wrong, wrong]))


# --- limits ---------------------------------------------------------------------------


async def test_max_turns_ends_with_the_transcript() -> None:
    def forever(request: ModelRequest) -> ScriptStep:
        return call("echo", {"text": str(len(request.messages))})

    agent = Agent(name="looper", tools=[Echo()], max_turns=3)
    model = ScriptedModel(forever)
    with pytest.raises(MaxTurnsExceeded) as info:
        await agent.run("go", deps=Deps(), model=model)
    exc = info.value
    assert exc.max_turns == 3
    assert len(model.requests) == 3
    assert exc.usage is not None
    assert exc.usage.requests == 3
    assert [type(m) for m in exc.messages] == [
        SystemMessage,
        UserMessage,
        *[AssistantMessage, ToolResultMessage] * 3,
    ]


async def test_budget_stops_the_second_model_call() -> None:
    ledger = Ledger(Budget(requests=1))
    model = ScriptedModel([call("echo", {"text": "a"}), "never sent"], spec=NANO)
    with pytest.raises(BudgetExceeded) as info:
        await Agent(name="b", tools=[Echo()]).run("go", deps=Deps(), model=model, ledger=ledger)
    exc = info.value
    assert exc.what == "requests"
    assert (exc.limit, exc.spent) == (1, 1)
    assert len(model.requests) == 1
    assert exc.usage is not None
    assert exc.usage.requests == 1
    assert ledger.usage.requests == 1


async def test_dollar_budget() -> None:
    # A call starts only when its worst case (input bound + output cap) fits: this budget
    # holds the first call's worst case but not a second one on top of what it spent.
    agent = Agent(name="b", tools=[Echo()], max_output_tokens=2_000)
    first = NANO.cost(Usage(input_tokens=2_000, output_tokens=2_000))
    ledger = Ledger(Budget(usd=first))
    model = ScriptedModel([call("echo", {"text": "a" * 4000}), "never sent"], spec=NANO)
    with pytest.raises(BudgetExceeded, match="dollars") as info:
        await agent.run("go", deps=Deps(), model=model, ledger=ledger)
    assert len(model.requests) == 1
    assert info.value.needed is not None
    assert ledger.budget_dollars <= first
    assert ledger.held_dollars == 0


async def test_a_call_whose_worst_case_does_not_fit_never_starts() -> None:
    ledger = Ledger(Budget(usd=Decimal("0.000001")))
    model = ScriptedModel(["never sent"], spec=NANO)
    with pytest.raises(BudgetExceeded, match="may cost up to"):
        await Agent(name="b").run("go", model=model, ledger=ledger)
    assert model.requests == []
    assert ledger.usage.requests == 0


# --- the request --------------------------------------------------------------------


async def test_stable_prefix_first_variable_part_last() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    agent = Triager(instructions="Triage carefully.", tools=[Echo(), add])
    model = ScriptedModel(
        [
            call("echo", {"text": "x"}),
            [call("add", {"a": 1, "b": 2}), call("echo", {"text": "y"})],
            {"category": "bug", "priority": "bad", "tags": None},
            {"category": "bug", "priority": 1, "tags": None},
        ]
    )
    await agent.run({"title": "t"}, deps=Deps(), model=model)
    first = model.requests[0]
    assert first.messages[0] == SystemMessage(content="Triage carefully.")
    assert [t.name for t in first.tools] == ["echo", "add"]
    for earlier, later in zip(model.requests, model.requests[1:], strict=False):
        assert later.messages[0] == first.messages[0]
        assert later.tools == first.tools
        assert later.output_schema == first.output_schema
        # append-only: each request extends the previous one, so the prefix is cacheable
        assert later.messages[: len(earlier.messages)] == earlier.messages
    kinds = [type(r.messages[-1]) for r in model.requests]
    assert kinds == [UserMessage, ToolResultMessage, ToolResultMessage, UserMessage]
    assert first.output_schema is not None
    assert first.output_schema.name == "triager_output"
    assert first.metadata["agent"] == "Triager"


async def test_settings_reach_the_request() -> None:
    agent = Agent(name="s", reasoning_effort="low", temperature=0.2, max_output_tokens=99)
    model = ScriptedModel(["ok"])
    await agent.run("go", model=model, subtask_id="t1")
    (request,) = model.requests
    assert (request.reasoning_effort, request.temperature, request.max_output_tokens) == (
        "low",
        0.2,
        99,
    )
    assert request.metadata == {"agent": "s", "subtask_id": "t1"}
    assert request.output_schema is None


async def test_non_object_output_is_wrapped_and_unwrapped() -> None:
    agent: Agent[list[int]] = Agent(name="numbers", output_type=list[int])
    model = ScriptedModel([{"result": [1, 2, 3]}])
    result = await agent.run("count to three", model=model)
    assert result.output == [1, 2, 3]
    schema = model.requests[0].output_schema
    assert schema is not None
    assert schema.schema["required"] == ["result"]
    assert schema.schema["properties"]["result"] == {"items": {"type": "integer"}, "type": "array"}


async def test_history_continues_an_earlier_attempt() -> None:
    earlier = await Agent(name="first", instructions="Old.").run(
        "task", model=ScriptedModel(["draft"])
    )
    model = ScriptedModel(["better"])
    result = await Agent(name="second", instructions="New.").run(
        "ignored", model=model, history=earlier.messages, followup="Improve it."
    )
    assert result.output == "better"
    assert model.requests[0].messages == (
        SystemMessage(content="New."),
        UserMessage(content="task"),
        AssistantMessage(content="draft"),
        UserMessage(content="Improve it."),
    )


# --- the run context ------------------------------------------------------------------


async def test_run_context_gives_deps_usage_so_far_and_a_logger() -> None:
    deps = Deps(prefix="#")
    model = ScriptedModel(
        [
            call("echo", {"text": "a"}),
            call("echo", {"text": "b"}),
            call("echo", {"text": "c"}),
            "done",
        ]
    )
    result = await Agent(name="ctx", tools=[Echo()]).run("go", deps=deps, model=model)
    # (turn, requests counted so far, agent) as each tool call saw them
    assert deps.seen == [(1, 1, "ctx"), (2, 2, "ctx"), (3, 3, "ctx")]
    contents = [m.content for m in result.messages if isinstance(m, ToolResultMessage)]
    assert contents == ["#a", "#b", "#c"]
    assert result.usage.requests == 4


class GivesUp(Triager):
    async def validate_output(self, output: Triage, ctx: RunContext[Deps]) -> Triage:
        if output.priority == 1:
            raise EscalationRequested("priority 1 needs a human", plan_shaped=False)
        return output


async def test_escalation_from_validate_output_carries_the_transcript() -> None:
    model = ScriptedModel([{"category": "bug", "priority": 1, "tags": None}])
    with pytest.raises(EscalationRequested) as info:
        await GivesUp().run({"title": "t"}, model=model)
    exc = info.value
    assert exc.usage is not None
    assert exc.usage.requests == 1
    assert [type(m) for m in exc.messages] == [SystemMessage, UserMessage, AssistantMessage]
