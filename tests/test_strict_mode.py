"""What OpenAI strict mode accepts: moved constraints, refused types, the opt-out, names."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from openai.lib._pydantic import _ensure_strict_json_schema
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from tiered import Agent, Ledger, OutputSchema, RunContext, ScriptedModel, Tool, UserError, tool
from tiered._names import NAME_PATTERN, legal_name, snake_case
from tiered._schema import StrictSchema
from tiered._strict import SUPPORTED_FORMATS
from tiered._tool import ToolSet
from tiered.models import call

pytestmark = pytest.mark.anyio

# Keywords strict mode accepts (OpenAI structured-outputs guide, "Supported schemas"),
# plus the structural and annotation keywords every schema uses.
ALLOWED = {
    "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum",
    "const", "$ref", "$defs", "description", "title",
    "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minItems", "maxItems",
}  # fmt: skip


class Profile(BaseModel):
    handle: str = Field(max_length=20, description="Public name")
    code: str = Field(min_length=2, pattern=r"^[A-Z]+$")
    tags: set[str]
    homepage: HttpUrl
    avatar: bytes
    born: dt.date
    seen: dt.datetime
    level: int = Field(ge=0, le=10, multiple_of=2)
    picks: list[int] = Field(min_length=1, max_length=3)


GOOD = {
    "handle": "ana",
    "code": "NZ",
    "tags": ["a", "b"],
    "homepage": "https://example.org/",
    "avatar": "aGk=",
    "born": "1990-01-02",
    "seen": "2026-01-02T03:04:05Z",
    "level": 4,
    "picks": [1],
}


def _nodes(node: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from _nodes(sub, f"{path}.{name}")
            else:
                yield from _nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _nodes(item, f"{path}[{i}]")


def test_sent_schema_uses_only_keywords_and_formats_strict_mode_supports() -> None:
    schema = StrictSchema(Profile).schema
    for path, node in _nodes(schema):
        assert set(node) <= ALLOWED, (path, set(node) - ALLOWED)
        if "format" in node:
            assert node["format"] in SUPPORTED_FORMATS, path
    # the openai SDK's own strict-mode pass has nothing left to change
    assert _ensure_strict_json_schema(json.loads(json.dumps(schema)), path=(), root=schema) == (
        schema
    )


def test_moved_constraints_are_described_and_supported_ones_kept() -> None:
    props = StrictSchema(Profile).schema["properties"]
    assert props["handle"]["description"] == "Public name (at most 20 characters)"
    assert props["code"]["pattern"] == "^[A-Z]+$"
    assert props["code"]["description"] == "(at least 2 characters)"
    assert props["tags"]["description"] == "(items must be unique)"
    assert "format: uri" in props["homepage"]["description"]
    assert props["avatar"]["description"] == "(format: binary)"
    assert props["born"]["format"] == "date"
    assert props["seen"]["format"] == "date-time"
    assert (props["level"]["minimum"], props["level"]["maximum"]) == (0, 10)
    assert props["level"]["multipleOf"] == 2
    assert (props["picks"]["minItems"], props["picks"]["maxItems"]) == (1, 3)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"handle": "x" * 25}, "at handle: must have at most 20 characters (got 25)"),
        ({"code": "A"}, "at code: must have at least 2 characters (got 1)"),
        ({"tags": ["a", "a"]}, "at tags: items must be unique, and some repeat"),
        ({"code": "ab"}, "at code: 'ab' does not match '^[A-Z]+$'"),
        ({"level": 12}, "at level: 12 is greater than the maximum of 10"),
        ({"picks": []}, "at picks: [] should be non-empty"),
    ],
)
def test_moved_and_kept_constraints_are_still_enforced(
    change: dict[str, Any], expected: str
) -> None:
    schema = StrictSchema(Profile)
    data = {**GOOD, **change}
    assert schema.errors(data) == [expected]
    with pytest.raises(ValueError, match=re.escape(expected)):
        schema.validate(data)


def test_pydantic_checks_what_the_schema_cannot_and_says_where() -> None:
    schema = StrictSchema(Profile)
    assert schema.validate(GOOD).tags == {"a", "b"}
    with pytest.raises(ValueError, match=r"^at homepage: Input should be a valid URL") as info:
        schema.validate({**GOOD, "homepage": "not a url"})
    assert "errors.pydantic.dev" not in str(info.value)


async def test_the_repair_prompt_names_the_violated_constraint() -> None:
    class Short(BaseModel):
        title: str = Field(max_length=10)

    agent = Agent(name="titler", output_type=Short, max_repairs=1)
    model = ScriptedModel([{"title": "a title that is far too long"}, {"title": "short"}])
    result = await agent.run("go", model=model)
    assert result.output == Short(title="short")
    repair = model.requests[1].messages[-1].content
    assert repair is not None
    assert "at title: must have at most 10 characters (got 28)" in repair


class Entry(BaseModel):
    key: str


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int


class Inner(BaseModel):
    meta: dict[str, int]


class Outer(BaseModel):
    inner: Inner


REFUSED: list[tuple[Any, str, str]] = [
    (dict[str, int], "dict with free-form keys", "list[Entry]"),
    (Open, "extra='allow'", "drop extra='allow'"),
    (Any, "of any type", "concrete type"),
    (list, "a list of anything", "list[str]"),
    (tuple[int, str], "fixed-length tuple", "one field per position"),
    (dict, "no declared fields", "pydantic model"),
    (Outer, "field 'Inner.meta'", "list[Entry]"),
]


@pytest.mark.parametrize(("tp", "reason", "fix"), REFUSED, ids=lambda x: str(x)[:30])
def test_types_strict_mode_cannot_express_are_refused_with_the_fix(
    tp: Any, reason: str, fix: str
) -> None:
    with pytest.raises(UserError) as info:
        Agent(name="a", output_type=tp)
    message = str(info.value)
    assert message.startswith("agent 'a' output: ")
    assert reason in message
    assert fix in message
    assert message.endswith(
        "or pass `Agent(strict_output=False)` to send a non-strict schema (validated here all "
        "the same)"
    )


def test_a_tool_parameter_strict_mode_cannot_express_is_refused_by_name() -> None:
    def count(words: dict[str, int]) -> int:
        return sum(words.values())

    with pytest.raises(UserError, match=r"tool 'count': field 'words' is a dict") as info:
        tool(count)
    assert "`@tool(strict=False)`" in str(info.value)

    class Tally(Tool):
        class Args(BaseModel):
            anything: Any

    with pytest.raises(UserError, match=r"tool 'tally': field 'anything' is of any type"):
        Tally().definition()


async def test_strict_false_sends_pydantic_schema_non_strict_and_still_validates() -> None:
    @tool(strict=False)
    def count(words: dict[str, int]) -> int:
        """Add up the counts."""
        return sum(words.values())

    d = count.definition()
    assert d.strict is False
    assert d.parameters["properties"]["words"]["additionalProperties"] == {"type": "integer"}
    assert count.args_schema.errors({"words": {"a": "x"}}) == [
        "at words/a: 'x' is not of type 'integer'"
    ]

    ts = ToolSet([count])
    ctx: RunContext[None] = RunContext(deps=None, agent="t", ledger=Ledger())
    ok = await ts.run_call(call("count", {"words": {"a": 2, "b": 3}}), ctx)
    assert ok.content == "5"

    agent = Agent(name="counter", output_type=dict[str, int], strict_output=False)
    model = ScriptedModel([{"result": {"a": 1}}])
    result = await agent.run("go", model=model)
    assert result.output == {"a": 1}
    sent = model.requests[0].output_schema
    assert sent is not None
    assert sent.strict is False


async def test_annotated_constraints_on_tool_parameters_are_enforced() -> None:
    @tool
    def dial(level: Annotated[int, Field(ge=0, le=10, description="How loud")]) -> str:
        """Set the level."""
        return f"level {level}"

    prop = dial.definition().parameters["properties"]["level"]
    assert (prop["minimum"], prop["maximum"], prop["description"]) == (0, 10, "How loud")
    ctx: RunContext[None] = RunContext(deps=None, agent="t", ledger=Ledger())
    ts = ToolSet([dial])
    bad = await ts.run_call(call("dial", {"level": 99}), ctx)
    assert bad.is_error
    assert "at level: 99 is greater than the maximum of 10" in bad.content
    good = await ts.run_call(call("dial", {"level": 7}), ctx)
    assert good.content == "level 7"


def test_context_parameter_is_found_with_annotated_hints_too() -> None:
    @tool
    def who(ctx: RunContext[None], name: Annotated[str, Field(max_length=5)]) -> str:
        """Greet."""
        return ctx.agent + name

    assert list(who.definition().parameters["properties"]) == ["name"]
    assert who.definition().parameters["properties"]["name"]["description"] == (
        "(at most 5 characters)"
    )
    assert who.args_schema.errors({"name": "toolong"}) == [
        "at name: must have at most 5 characters (got 7)"
    ]


def test_defaults_reach_the_model_and_null_means_the_default() -> None:
    @tool
    def search(query: str, limit: int = 10, lang: str | None = None) -> str:
        """Search."""
        return query

    props = search.definition().parameters["properties"]
    assert props["limit"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert props["limit"]["description"] == "Send null for the default (10)."
    args = search.args_schema.validate({"query": "q", "limit": None, "lang": None})
    assert (args.limit, args.lang) == (10, None)


@pytest.mark.parametrize("bad", ["web.search", "a b", "x" * 65, "naïve", "<lambda>"])
def test_bad_names_are_refused_where_they_are_defined(bad: str) -> None:
    quoted = re.escape(NAME_PATTERN)
    with pytest.raises(UserError, match=quoted):

        class Named(Tool):
            name = bad

            class Args(BaseModel):
                q: str

    with pytest.raises(UserError, match=quoted):
        tool(name=bad)(lambda q: q)
    with pytest.raises(UserError, match=quoted):
        OutputSchema(name=bad, schema={"type": "object"})
    with pytest.raises(UserError, match=quoted):
        tool(lambda q: q)  # a lambda's name is "<lambda>": give it a name


async def test_output_schema_names_are_made_legal_from_the_agent_name() -> None:
    class Answer(BaseModel):
        text: str

    assert legal_name("planner.compose", suffix="_output") == "planner_compose_output"
    assert re.match(NAME_PATTERN, legal_name("x" * 100, suffix="_output"))
    with pytest.raises(UserError, match=re.escape(NAME_PATTERN)):
        OutputSchema(name="", schema={"type": "object"})
    agent = Agent(name="planner.compose", output_type=Answer)
    model = ScriptedModel([{"text": "hi"}])
    await agent.run("go", model=model)
    sent = model.requests[0].output_schema
    assert sent is not None
    assert sent.name == "planner_compose_output"


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("HTTPFetch", "http_fetch"),
        ("WebSearch", "web_search"),
        ("getURL2", "get_url2"),
        ("SQLQueryTool", "sql_query_tool"),
        ("already_snake", "already_snake"),
    ],
)
async def test_one_snake_case_for_tools_and_agents(name: str, snake: str) -> None:
    assert snake_case(name) == snake
    tool_cls: type[Tool] = type(name, (Tool,), {"Args": Entry})
    assert tool_cls.name == snake
    agent_cls: type[Agent[Entry]] = type(name, (Agent,), {"output_type": Entry})
    model = ScriptedModel([{"key": "k"}])
    await agent_cls().run("go", model=model)
    sent = model.requests[0].output_schema
    assert sent is not None
    assert sent.name == f"{snake}_output"
