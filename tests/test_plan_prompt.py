"""What the planner is asked for: the full plan form, and the lean one for small planners."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from tiered import Agent, Ledger, Planner, ScriptedModel, Stakes, Tier
from tiered._plan_prompt import (
    PLANNER_INSTRUCTIONS,
    catalog_text,
    default_instructions,
    plan_output_type,
)

pytestmark = pytest.mark.anyio


class Ref(BaseModel):
    order_id: str


class Lookup(Agent[str]):
    """Looks an order up."""

    input_type = Ref


class Writer(Agent[str]):
    """Writes a short note."""


EXECUTORS: dict[str, Agent[Any]] = {"Lookup": Lookup(), "Writer": Writer()}


def _subtask_fields(lean: bool) -> list[str]:
    schema = plan_output_type(EXECUTORS, lean=lean).model_json_schema()
    branch = schema["$defs"]["Subtask_Lookup"]
    return list(branch["properties"])


def test_the_lean_form_asks_only_ids_agents_arguments_and_dependencies() -> None:
    assert _subtask_fields(lean=True) == ["id", "agent", "arguments", "depends_on"]
    assert _subtask_fields(lean=False) == [
        "id",
        "agent",
        "instructions",
        "arguments",
        "depends_on",
        "plan_shaped",
        "stakes",
    ]
    lean = plan_output_type(EXECUTORS, lean=True).model_json_schema()
    assert list(lean["properties"]) == ["subtasks"]


async def test_an_agent_that_uses_no_dependencies_gets_no_depends_on_to_write() -> None:
    class Alone(Agent[str]):
        """Works from its arguments alone."""

        input_type = Ref
        uses_dependencies = False

    executors: dict[str, Agent[Any]] = {"Alone": Alone(), "Writer": Writer()}
    for lean in (True, False):
        defs = plan_output_type(executors, lean=lean).model_json_schema()["$defs"]
        assert "depends_on" not in defs["Subtask_Alone"]["properties"]
        assert "depends_on" in defs["Subtask_Writer"]["properties"]
    plan_json = {
        "subtasks": [
            {"id": "a", "agent": "Alone", "arguments": {"order_id": "A-1"}},
            {"id": "n", "agent": "Writer", "arguments": {"input": "note"}, "depends_on": ["a"]},
        ]
    }
    model = ScriptedModel([plan_json], tier=Tier.FLAGSHIP)
    planner = Planner(lean=True)
    plan, _ = await planner.plan("goal", executors, models={Tier.FLAGSHIP: model}, ledger=Ledger())
    assert [s.depends_on for s in plan.subtasks] == [(), ("a",)]


def test_each_forms_example_is_a_plan_of_that_form() -> None:
    for lean in (True, False):
        text = default_instructions(lean=lean)
        example = json.loads(text.rsplit("\n", 1)[-1])
        fields = set(example["subtasks"][0])
        assert ("instructions" in fields) is not lean
        assert ("stakes" in text) is not lean
    assert default_instructions(lean=False) == PLANNER_INSTRUCTIONS


async def test_a_lean_plan_takes_the_agents_description_and_the_default_routing_facts() -> None:
    plan_json = {
        "subtasks": [
            {"id": "a", "agent": "Lookup", "arguments": {"order_id": "A-1"}, "depends_on": []},
            {"id": "n", "agent": "Writer", "arguments": {"input": "note"}, "depends_on": ["a"]},
        ]
    }
    model = ScriptedModel([plan_json], tier=Tier.FLAGSHIP)
    planner = Planner(lean=True)
    plan, _ = await planner.plan("goal", EXECUTORS, models={Tier.FLAGSHIP: model}, ledger=Ledger())
    first, second = plan.subtasks
    assert first.instructions == "Looks an order up."
    assert second.instructions == "Writes a short note."
    assert second.depends_on == ("a",)
    assert (first.plan_shaped, first.stakes) == (False, Stakes.NORMAL)
    assert plan.final_answer == ""
    sent = model.requests[0]
    assert sent.output_schema is not None
    assert "instructions" not in json.dumps(sent.output_schema.schema)
    assert "plan_shaped" not in (sent.messages[0].content or "")


def test_the_lean_catalog_names_output_fields_and_leaves_arguments_to_the_schema() -> None:
    lean = catalog_text(EXECUTORS, lean=True)
    assert "- Lookup [nano]: Looks an order up. -> text" in lean
    assert "arguments" not in lean
    assert "order_id: string" in catalog_text(EXECUTORS)
