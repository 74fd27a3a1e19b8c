"""`Tool.from_schema`: tools from raw JSON schemas, with legal names and validation."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tiered import Agent, Tool, ToolResultMessage, UserError
from tiered._schema_tool import SchemaTool
from tiered.models import ScriptedModel, call

BFCL_PARAMETERS: dict[str, Any] = {
    "type": "dict",
    "properties": {
        "number": {"type": "integer", "description": "The number."},
        "scale": {"type": "float", "description": "A factor.", "default": 1.0},
    },
    "required": ["number"],
}


def test_bfcl_types_are_normalised_and_made_strict() -> None:
    t = Tool.from_schema("math.factorial", "Factorial of a number.", BFCL_PARAMETERS, lambda **a: a)
    d = t.definition()
    assert d.name == "math_factorial"
    assert isinstance(t, SchemaTool)
    assert t.original_name == "math.factorial"
    assert d.strict is True
    assert d.parameters["type"] == "object"
    assert d.parameters["required"] == ["number", "scale"]
    assert d.parameters["additionalProperties"] is False
    scale = d.parameters["properties"]["scale"]
    assert {"type": "number"} in scale["anyOf"]
    assert {"type": "null"} in scale["anyOf"]


def test_free_form_schema_is_sent_non_strict() -> None:
    params = {"type": "object", "properties": {"options": {"type": "dict"}, "x": {"type": "any"}}}
    d = Tool.from_schema("configure", "Set options.", params, lambda **a: a).definition()
    assert d.strict is False
    assert d.parameters["properties"]["options"] == {"type": "object"}
    assert "type" not in d.parameters["properties"]["x"]


def test_long_and_odd_names_become_legal_and_distinct() -> None:
    a = Tool.from_schema("a." * 40 + "x", "", {"type": "object", "properties": {}}, print)
    b = Tool.from_schema("a." * 40 + "y", "", {"type": "object", "properties": {}}, print)
    assert len(a.name) <= 64
    assert a.name != b.name
    assert Tool.from_schema("ok_name-1", "", {"type": "object"}, print).name == "ok_name-1"


def test_bad_schema_is_a_user_error() -> None:
    with pytest.raises(UserError, match="object schema"):
        Tool.from_schema("f", "", {"type": "string"}, print)
    with pytest.raises(UserError, match="not a valid JSON schema"):
        Tool.from_schema("f", "", {"type": "object", "required": "x"}, print)


def test_calls_are_validated_then_run_under_the_original_name() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def factorial(**arguments: Any) -> int:
        seen.append(("math.factorial", arguments))
        n = 1
        for i in range(2, arguments["number"] + 1):
            n *= i
        return n

    t = Tool.from_schema("math.factorial", "Factorial.", BFCL_PARAMETERS, factorial)
    model = ScriptedModel(
        [
            call("math_factorial", {"number": "five", "scale": None}),
            call("math_factorial", {"number": 5, "scale": None}),
            "done",
        ]
    )
    agent = Agent(name="calc", instructions="Compute.", tools=[t])
    result = anyio.run(lambda: agent.run("5!", model=model))
    assert result.output == "done"
    assert seen == [("math.factorial", {"number": 5})]  # null for a default is dropped
    results = [m for m in result.messages if isinstance(m, ToolResultMessage)]
    errors = [m for m in results if m.is_error]
    assert len(errors) == 1
    assert "number" in errors[0].content
    answers = [m.content for m in results if m.name == "math_factorial"]
    assert json.loads(answers[-1]) == 120


def test_async_function_and_given_schema_still_checked() -> None:
    async def echo(**arguments: Any) -> dict[str, Any]:
        return arguments

    params = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
    t = Tool.from_schema("echo", "Echo.", params, echo)
    model = ScriptedModel([call("echo", {"n": 1}), call("echo", {"n": 4}), "ok"])
    result = anyio.run(lambda: Agent(instructions="x", tools=[t]).run("go", model=model))
    contents = [m.content for m in result.messages if isinstance(m, ToolResultMessage)]
    assert "minimum" in contents[0] or "less than" in contents[0]
    assert json.loads(contents[1]) == {"n": 4}
