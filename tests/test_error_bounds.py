"""Error messages stay short whatever the model sends: at most `MAX_PROBLEMS` problems
are listed (then "and N more problems"), each cut to a few hundred characters, for
schema violations, pydantic's errors, plan checks and the repair prompt the model gets."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BaseModel, Field

from orchestration_support import Echo
from test_hostile_input import _ctx
from tiered import (
    Agent,
    ModelRequest,
    Plan,
    ScriptedModel,
    Subtask,
    Tier,
    UserMessage,
    check_plan,
    default_catalog,
    tool,
)
from tiered._json import MAX_PROBLEMS, capped
from tiered._schema import StrictSchema
from tiered._tool import ToolSet
from tiered.models import call

pytestmark = pytest.mark.anyio


def test_capped_lists_the_first_problems_then_counts_the_rest() -> None:
    problems = [f"problem {i}" for i in range(1000)]
    shown = capped(problems)
    assert shown[:MAX_PROBLEMS] == problems[:MAX_PROBLEMS]
    assert shown[MAX_PROBLEMS:] == ["and 980 more problems"]
    assert capped(problems[:MAX_PROBLEMS]) == problems[:MAX_PROBLEMS]  # nothing to count
    assert capped([]) == []


def test_a_thousand_schema_violations_list_twenty() -> None:
    schema = StrictSchema(list[int])
    problems = schema.errors({"result": ["x"] * 1000})
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0] == "at result/0: 'x' is not of type 'integer'"
    assert problems[-1] == "and 980 more problems"
    with pytest.raises(ValueError, match="and 980 more problems") as info:
        schema.validate({"result": ["x"] * 1000})
    assert len(str(info.value)) < 2_000


def test_one_problem_quoting_a_megabyte_value_is_cut_short() -> None:
    schema = StrictSchema(list[int])
    (problem,) = schema.errors({"result": ["y" * 1_000_000]})
    assert problem.startswith("at result/0: 'yyyy")
    assert len(problem) < 600


def odd(n: int) -> int:
    if n % 2 == 0:
        raise ValueError("must be odd")
    return n


def test_a_thousand_failed_validators_list_twenty() -> None:
    # the JSON schema passes (they are integers): every error comes from pydantic
    schema = StrictSchema(list[Annotated[int, AfterValidator(odd)]])
    assert schema.errors({"result": [2] * 1000}) == []
    with pytest.raises(ValueError, match="and 980 more problems") as info:
        schema.validate({"result": [2] * 1000})
    assert "must be odd" in str(info.value)
    assert len(str(info.value)) < 2_500


class Numbers(BaseModel):
    values: list[int]


class Summer(Agent[int]):
    """Adds numbers."""

    input_type = Numbers
    output_type = int


def test_a_plan_with_a_thousand_bad_subtasks_lists_twenty_problems() -> None:
    plan = Plan(
        subtasks=tuple(Subtask(id=f"s{i}", agent="Nobody", instructions="x") for i in range(1000))
    )
    problems = check_plan(plan, {"Echo": Echo()})
    assert len(problems) == MAX_PROBLEMS + 1
    assert "unknown agent 'Nobody'" in problems[0]
    assert problems[-1] == "and 980 more problems"


def test_arguments_with_a_thousand_pydantic_errors_are_one_short_problem() -> None:
    plan = Plan(
        subtasks=(
            Subtask(id="s", agent="Summer", instructions="x", arguments={"values": ["x"] * 1000}),
        )
    )
    (problem,) = check_plan(plan, {"Summer": Summer()})
    assert "values.0: Input should be a valid integer" in problem
    assert problem.endswith("and 995 more problems")
    assert len(problem) < 600


@tool(in_thread=False)
def total(values: list[Annotated[int, Field(ge=0)]]) -> int:
    """Add up.

    Args:
        values: numbers, none negative.
    """
    return sum(values)


async def test_a_tool_call_with_a_thousand_wrong_items_gets_a_short_error() -> None:
    arguments = json.dumps({"values": [-1] * 1000})
    result = await ToolSet([total]).run_call(call("total", arguments), _ctx())
    assert result.is_error
    assert "at values/0:" in result.content
    assert "and 980 more problems" in result.content
    assert len(result.content) < 2_500


async def test_the_repair_prompt_for_a_hostile_output_stays_short() -> None:
    replies: list[Any] = [{"result": ["x"] * 5000}, {"result": [1, 2]}]
    model = ScriptedModel(replies, spec=default_catalog().for_tier(Tier.NANO))
    agent = Agent(name="lister", instructions="List numbers.", output_type=list[int])
    result = await agent.run("numbers please", model=model)
    assert result.output == [1, 2]
    repair = model.requests[1].messages[-1]
    assert isinstance(repair, UserMessage)
    assert "and 4980 more problems" in repair.content
    assert len(repair.content) < 2_500
    assert isinstance(model.requests[0], ModelRequest)
