"""The hot path's shortcuts give what the long way gives: the per-run rule-routing cache,
the routing estimate's JSON length, the frozen-record builders, the worker's charge box,
a metered call that is its own reservation, a turn loop that is its own tally."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestration_support import Echo, ladder
from tiered import (
    Agent,
    Attempt,
    Budget,
    ModelError,
    ModelRequest,
    Orchestrator,
    Plan,
    Reservation,
    RouteRequest,
    RuleRouter,
    Stakes,
    Subtask,
    Tier,
    Usage,
)
from tiered._agent_calls import Tally
from tiered._agent_loop import TurnLoop
from tiered._build import builder
from tiered._charges import ChargeBox, collect_charges, collector, task_box
from tiered._estimate import _json_chars
from tiered._ledger import Ledger
from tiered._metering import attempt_again, attempt_failed, metered_call
from tiered._routing import decide_with_limit
from tiered.models import Ladder

pytestmark = pytest.mark.anyio

_flat = st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4)
_mixed = st.dictionaries(
    st.text(max_size=8), st.one_of(st.text(), st.integers(), st.none(), st.lists(st.text()))
)


@given(st.one_of(_flat, _mixed))
def test_the_estimates_json_length_is_json_dumps_length(arguments: dict[str, Any]) -> None:
    assert _json_chars(arguments) == len(json.dumps(arguments, default=str))


def test_a_rule_decision_holds_for_every_estimate_under_its_limit() -> None:
    models = ladder(lambda request: {"text": "ok"})
    lad = Ladder(models)
    rules = RuleRouter()
    for fields in ({}, {"stakes": Stakes.HIGH}, {"tier": Tier.MINI}, {"plan_shaped": True}):
        s = Subtask(id="s", agent="Echo", instructions="do", arguments={"text": "x"}, **fields)
        agent = Echo()

        def request(tokens: int, s: Subtask = s, agent: Echo = agent) -> RouteRequest:
            return RouteRequest(subtask=s, agent=agent, estimated_input_tokens=tokens, ladder=lad)

        decision, limit = decide_with_limit(rules, request(100))
        assert decision == rules.decide(request(100))
        for tokens in (0, 1, 5_000, min(limit - 1, 10**9)):
            assert rules.decide(request(tokens)) == decision
        if limit < 10**9:  # past the limit the estimate matters again
            assert rules.decide(request(limit)) != decision
            assert decide_with_limit(rules, request(limit))[1] == 0


async def test_a_run_routes_each_subtask_as_the_rules_do() -> None:
    models = ladder(lambda request: {"text": "ok"})
    huge = "y" * 1_200_000  # over 272K tokens: the top tier, whatever the cache holds
    specs: list[tuple[str, dict[str, Any], str]] = [
        ("a", {}, "x"),
        ("b", {"stakes": Stakes.HIGH}, "x"),
        ("c", {}, huge),
        ("d", {}, "x"),
        ("e", {"tier": Tier.MINI}, "x"),
    ]
    plan = Plan(
        subtasks=tuple(
            Subtask(id=i, agent="Echo", instructions=f"do {i}", arguments={"text": t}, **f)
            for i, f, t in specs
        )
    )
    result = await Orchestrator([Echo()], models=models).run("go", plan=plan, compose=False)

    tiers = {i: r.attempts[0].tier for i, r in result.subtasks.items()}
    assert tiers == {
        "a": Tier.NANO,
        "b": Tier.MINI,
        "c": Tier.FLAGSHIP,
        "d": Tier.NANO,
        "e": Tier.MINI,
    }
    routes = {i: r.route for i, r in result.subtasks.items()}
    assert routes["a"] is routes["d"]  # one decision object for subtasks alike
    assert routes["c"] is not None
    assert "272,000" in routes["c"].reason


def test_a_built_record_is_the_record_init_makes() -> None:
    usage = Usage(input_tokens=3, output_tokens=1, requests=1)
    fields: dict[str, Any] = {
        "number": 1,
        "tier": Tier.NANO,
        "model": "m",
        "reason": "routed",
        "usage": usage,
        "cost": Decimal("0.1"),
        "equivalent_cost": Decimal("0.1"),
        "duration_s": 0.5,
        "outcome": "succeeded",
        "error": None,
        "charges": (),
    }
    built, made = builder(Attempt)(**fields), Attempt(**fields)
    assert built == made
    assert hash(built) == hash(made)
    assert repr(built) == repr(made)
    request = builder(ModelRequest)(
        messages=(),
        tools=(),
        tool_choice="auto",
        parallel_tool_calls=True,
        output_schema=None,
        reasoning_effort=None,
        temperature=None,
        max_output_tokens=10,
        metadata={},
        on_delta=None,
    )
    assert request == ModelRequest(messages=(), max_output_tokens=10)
    with pytest.raises(TypeError):
        builder(Attempt)(number=1)  # every field is required


def test_builder_refuses_a_class_with_post_init() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            assert self.x >= 0

    with pytest.raises(TypeError, match="__post_init__"):
        builder(Checked)


def test_a_charge_box_keeps_only_what_its_open_block_books() -> None:
    ledger = Ledger()
    spec = Ladder(ladder(lambda request: {"text": "ok"}))[Tier.NANO].spec
    one = Usage(input_tokens=10, output_tokens=1, requests=1)
    token = collector.set(None)
    try:
        box = task_box()
        assert collector.get() is box
        ledger.record(spec, one)  # no block open: the ledger only
        box.start()
        assert box.stop() == []  # nothing booked: an empty list, made at the end
        box.start()
        first = ledger.record(spec, one)
        with collect_charges() as inner:  # a block inside takes its own charges
            nested = ledger.record(spec, one)
        assert collector.get() is box
        second = ledger.record(spec, one)
        assert box.stop() == [first, second]
        assert inner == [nested]
        ledger.record(spec, one)
        box.start()
        assert box.stop() == []
        assert isinstance(box, ChargeBox)
    finally:
        collector.reset(token)
    assert len(ledger.charges) == 5


def test_a_metered_call_is_its_own_reservation_across_retried_attempts() -> None:
    ledger = Ledger(Budget(usd=Decimal(1)))
    spec = Ladder(ladder(lambda request: {"text": "ok"}))[Tier.NANO].spec
    used = Usage(input_tokens=10, output_tokens=1, requests=1)
    worst = ledger.reserve(spec, 100, 50)
    held = ledger.held_dollars
    worst.release()
    with metered_call(ledger, spec, 100, 50) as call:
        assert isinstance(call, Reservation)  # the call holds its worst case itself
        assert call.open
        assert ledger.held_dollars == held
        failure = ModelError("503")
        failure.usage = used
        attempt_failed(failure)  # a retrying wrapper books it
        assert not call.open
        assert ledger.held_dollars == 0
        assert [c.usage for c in call.charges] == [used]
        attempt_again()  # and reserves the next attempt
        assert call.open
        assert ledger.held_dollars == held
        attempt_failed(ValueError("never sent"))  # no usage, not billed: released
        assert ledger.held_dollars == 0
        attempt_again()
        call.succeeded(used)
    assert not call.open
    assert ledger.held_dollars == 0
    assert len(call.charges) == 2
    assert ledger.usage.requests == 2
    assert ledger.charges == list(call.charges)


async def test_the_turn_loop_is_its_own_tally() -> None:
    agent: Agent[str, None] = Agent(name="plain", instructions="Answer.")
    result = await agent.run("hi", model=Ladder(ladder(lambda request: {"text": "ok"}))[Tier.NANO])
    assert result.usage.requests == 1
    assert result.cost > 0
    loop = TurnLoop.__new__(TurnLoop)
    assert isinstance(loop, Tally)
    assert loop.tally is loop
