"""No model output crashes a run: property tests over tool arguments, structured output
and plans (1,000 examples each), plus the cases that used to crash, pinned by hand."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, field_validator

from tiered import Agent, Ledger, PlanInvalid, RunContext, Tier, TieredError, tool
from tiered._json import UntrustedJson, parse_untrusted
from tiered._plan import Plan, Subtask, check_plan, topological_order
from tiered._planner import Planner
from tiered._tool import ToolSet
from tiered.models import ScriptedModel, call

pytestmark = pytest.mark.anyio

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- what a hostile model may send -------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _nest(depth: int, kind: str) -> str:
    opening, closing = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opening * depth + "1" + closing * depth


hostile_fragments = st.one_of(
    st.integers(1, 6000).map(lambda n: "9" * n),  # over 4,300 digits: ValueError in json
    st.integers(1, 3000).flatmap(lambda n: st.sampled_from([_nest(n, "list"), _nest(n, "dict")])),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", '"\\ud800"', '"\\udfff"']),
    st.sampled_from(["null", "true", "[]", '""', "0", "[1, 2]", '"text"', "{", "}", ",", ""]),
    st.integers(0, 20_000).map(lambda n: json.dumps("x" * n)),
)


@st.composite
def hostile_objects(draw: st.DrawFn, keys: list[str]) -> str:
    """A JSON object whose fields are the schema's own names holding hostile values."""
    fields = draw(st.lists(st.sampled_from(keys), max_size=len(keys)))
    values = [draw(hostile_fragments | json_values.map(json.dumps)) for _ in fields]
    return (
        "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in zip(fields, values, strict=True)) + "}"
    )


def hostile_text(keys: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=50),
        hostile_fragments,
        json_values.map(json.dumps),
        hostile_objects(keys),
        hostile_objects(keys).map(lambda s: s[: len(s) // 2]),  # cut off mid-way
    )


# --- tool arguments ----------------------------------------------------------------------


class Line(BaseModel):
    sku: str
    qty: int = Field(ge=1)


class PlaceArgs(BaseModel):
    name: str
    count: int
    ratio: float
    mode: Literal["fast", "slow"] = "fast"
    lines: list[Line] = []
    extra: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _short(cls, v: str) -> str:
        if len(v) > 100:
            raise ValueError("name too long")
        return v


@tool(in_thread=False, strict=False)  # `extra` is free-form: a non-strict schema
def place(name: str, count: int, ratio: float, lines: list[Line], extra: dict[str, Any]) -> str:
    """Place an order."""
    return f"{name}:{count}:{ratio}:{len(lines)}:{len(extra)}"


PLACE_KEYS = ["name", "count", "ratio", "lines", "extra", "mode"]


def _ctx() -> RunContext[Any]:
    return RunContext(deps=None, agent="fuzz", ledger=Ledger())


@FUZZ
@given(arguments=hostile_text(PLACE_KEYS))
async def test_no_tool_arguments_crash_a_call(arguments: str) -> None:
    tools = ToolSet([place])
    started = time.perf_counter()
    result = await tools.run_call(call("place", arguments, id="c1"), _ctx())
    assert time.perf_counter() - started < 2
    assert result.tool_call_id == "c1"
    assert isinstance(result.content, str)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"name": "a", "count": ' + "9" * 5000 + "}", "more than 4300 digits"),
        ("[" * 5000 + "]" * 5000, "nested more than 64 deep"),
        ('{"name": "a", "extra": ' + '{"a":' * 100 + "1" + "}" * 100 + "}", "nested more than"),
        ('{"name": "a", "count": 1, "ratio": NaN}', "NaN is not a JSON value"),
        ('{"name": "a", "count": 1, "ratio": 1e999}', "too large for a float"),
        ('{"name": "\\ud800"}', "lone UTF-16 surrogate"),
        ("[1, 2]", "refused: an array was sent, not an object"),
        ("null", "refused: null was sent, not an object"),
        ('{"a": 1,', "not valid JSON"),
    ],
)
async def test_hostile_arguments_become_errors_the_model_can_act_on(
    arguments: str, expected: str
) -> None:
    result = await ToolSet([place]).run_call(call("place", arguments), _ctx())
    assert result.is_error
    assert expected in result.content


@pytest.mark.parametrize(
    ("n", "expected"), [(10_000, "and 9980 more problems"), (30_000, "more than 20000 values")]
)
async def test_a_huge_wrong_array_gets_a_short_error_quickly(n: int, expected: str) -> None:
    items = ",".join(["1"] * n)
    arguments = f'{{"name": "a", "count": 1, "ratio": 1, "lines": [{items}], "extra": {{}}}}'
    started = time.perf_counter()
    result = await ToolSet([place]).run_call(call("place", arguments), _ctx())
    assert time.perf_counter() - started < 5
    assert result.is_error
    assert expected in result.content
    assert len(result.content) < 5_000


def test_untrusted_json_is_a_value_error_with_one_type() -> None:
    with pytest.raises(UntrustedJson, match="characters; at most 10"):
        parse_untrusted('"' + "x" * 20 + '"', max_chars=10)
    assert parse_untrusted('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert issubclass(UntrustedJson, ValueError)


# --- structured output -------------------------------------------------------------------


class Verdict(BaseModel):
    label: Literal["yes", "no"]
    score: float
    reasons: list[str]
    detail: Line | None = None


VERDICT_KEYS = ["label", "score", "reasons", "detail"]
_judge = Agent(name="judge", output_type=Verdict, max_repairs=1, max_turns=3)


@FUZZ
@given(text=hostile_text(VERDICT_KEYS))
async def test_no_structured_output_crashes_a_run(text: str) -> None:
    model = ScriptedModel(lambda request: text)
    try:
        result = await _judge.run("judge this", model=model)
    except TieredError:
        return  # OutputInvalid or MaxTurnsExceeded: the run failed typed
    assert isinstance(result.output, Verdict)


async def test_a_deeply_nested_output_is_repaired_not_raised() -> None:
    deep = '{"label": "yes", "score": 1, "reasons": ' + "[" * 3000 + "]" * 3000 + "}"
    model = ScriptedModel([deep, '{"label": "no", "score": 0.5, "reasons": [], "detail": null}'])
    result = await _judge.run("judge this", model=model)
    assert result.output.label == "no"
    repair = model.requests[1].messages[-1]
    assert "nested more than 64 deep" in str(getattr(repair, "content", ""))


# --- plans -------------------------------------------------------------------------------


class Order(BaseModel):
    sku: str
    qty: int


EXECUTORS: dict[str, Agent[Any]] = {
    "writer": Agent(name="writer"),
    "orders": Agent(name="orders", input_type=Order),
}
IDS = ["a", "b", "c", "d", "e", "", "a b"]
ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"input": "x"},
    {"input": 5},
    {"sku": "a", "qty": 1},
    {"sku": "a", "qty": "two"},
    {"x": None},
    {"sku": [1], "qty": {"a": 1}},
    {"input": "x", "sku": "a"},
]


def _subtask(code: tuple[int, int, int, int]) -> Subtask:
    """A subtask from four small numbers (few draws keep 1,000 examples fast)."""
    sid, agent, args, deps = code
    depends_on = tuple(IDS[d] for d in (deps % 8, deps // 8) if d < len(IDS))
    return Subtask(
        id=IDS[sid],
        agent=["writer", "orders", "nobody"][agent],
        instructions="go",
        arguments=ARGUMENTS[args],
        depends_on=depends_on,
    )


subtasks = st.tuples(
    st.integers(0, len(IDS) - 1),
    st.integers(0, 2),
    st.integers(0, len(ARGUMENTS) - 1),
    st.integers(0, 63),
).map(_subtask)


@FUZZ
@given(plan=st.builds(Plan, subtasks=st.lists(subtasks, max_size=6).map(tuple)))
def test_check_plan_names_problems_and_never_raises(plan: Plan) -> None:
    problems = check_plan(plan, EXECUTORS)
    assert all(isinstance(p, str) and p for p in problems)
    if not problems:
        order = topological_order(plan)
        assert sorted(order) == sorted(s.id for s in plan.subtasks)
        position = {sid: i for i, sid in enumerate(order)}
        assert all(position[d] < position[s.id] for s in plan.subtasks for d in s.depends_on)


def _subtask_json(i: int, deps: list[str]) -> dict[str, Any]:
    return {
        "id": f"t{i}",
        "agent": "writer",
        "instructions": "go",
        "arguments": {"input": "x"},
        "depends_on": deps,
        "plan_shaped": False,
        "stakes": "normal",
    }


plan_texts = st.one_of(
    hostile_text(["subtasks", "final_answer"]),
    st.lists(
        st.builds(
            _subtask_json,
            st.integers(0, 5),
            st.lists(st.integers(0, 6).map(lambda i: f"t{i}"), max_size=3),
        ),
        max_size=6,
    ).map(lambda subs: json.dumps({"subtasks": subs, "final_answer": "all"})),
)
_planner = Planner(max_repairs=1)


@FUZZ
@given(text=plan_texts)
async def test_no_planner_output_crashes_planning(text: str) -> None:
    model = ScriptedModel(lambda request: text, tier=Tier.FLAGSHIP)
    try:
        plan, _ = await _planner.plan(
            "goal", EXECUTORS, models={Tier.FLAGSHIP: model}, ledger=Ledger()
        )
    except TieredError:
        return  # PlanInvalid: the plan stayed invalid after its repair turns
    assert check_plan(plan, EXECUTORS) == []


def test_a_10000_subtask_chain_listed_dependents_first_checks_in_linear_time() -> None:
    n = 10_000
    chain = tuple(
        Subtask(
            id=f"t{i}",
            agent="writer",
            arguments={"input": "x"},
            instructions="go",
            depends_on=(f"t{i - 1}",) if i else (),
        )
        for i in reversed(range(n))
    )
    started = time.perf_counter()
    plan = Plan(subtasks=chain)
    assert check_plan(plan, EXECUTORS) == []
    assert topological_order(plan) == [f"t{i}" for i in range(n)]
    assert time.perf_counter() - started < 2
    looped = Plan(subtasks=(chain[-1].model_copy(update={"depends_on": ("t9999",)}), *chain[:-1]))
    (problem,) = check_plan(looped, EXECUTORS)
    assert problem.startswith("dependency cycle: t0 -> t9999 -> t9998")


async def test_a_planner_reply_of_5000_subtasks_plans_when_max_subtasks_allows_it() -> None:
    n = 5_000  # about 60,000 JSON values: over the untrusted-JSON default of 20,000
    subtasks = [_subtask_json(0, [f"t{i - 1}"] if i else []) | {"id": f"t{i}"} for i in range(n)]
    text = json.dumps({"subtasks": subtasks, "final_answer": None})
    model = ScriptedModel(lambda request: text, tier=Tier.FLAGSHIP)
    big = Planner(max_subtasks=n, max_repairs=0)
    plan, _ = await big.plan("goal", EXECUTORS, models={Tier.FLAGSHIP: model}, ledger=Ledger())
    assert len(plan.subtasks) == n
    with pytest.raises(PlanInvalid) as refused:
        await Planner(max_repairs=0).plan(
            "goal", EXECUTORS, models={Tier.FLAGSHIP: model}, ledger=Ledger()
        )
    assert "20000" in str(refused.value)
