"""The benchmark's own machinery: the loopback simulator and the routing-economics accounting.

No timing assertions: these check that what `python -m bench` measures is measured right.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from bench_support import load_bench
from tiered import (
    Agent,
    Ledger,
    ModelRequest,
    ProviderError,
    SystemMessage,
    Tier,
    Usage,
    UserMessage,
)
from tiered import tool as as_tool
from tiered.models import OpenAIModel

load_bench()

from bench import routing, scale_report, scheduler, server  # noqa: E402

pytestmark = pytest.mark.anyio

# Long enough (over 1,024 tokens at four characters a token) for the prompt cache.
INSTRUCTIONS = "Follow the refund policy exactly. " * 170


@pytest.fixture(scope="module")
def sim() -> Iterator[server.SimServer]:
    with server.SimServer() as s:
        s.configure(mode="zero")
        yield s


@pytest.fixture
def model(sim: server.SimServer) -> OpenAIModel:
    sim.configure(reset=True)
    return OpenAIModel("gpt-5.4-nano", base_url=sim.base_url, api_key="sk-test")


def _expected_cached(common_chars: int) -> int:
    """OpenAI's rule: 1,024 tokens and more, in 128-token steps, of the shared prefix."""
    tokens = common_chars // server.CHARS_PER_TOKEN
    if tokens < server.CACHE_MIN_TOKENS:
        return 0
    steps = (tokens - server.CACHE_MIN_TOKENS) // server.CACHE_STEP_TOKENS
    return server.CACHE_MIN_TOKENS + steps * server.CACHE_STEP_TOKENS


async def test_usage_and_cached_tokens_through_openai_model(model: OpenAIModel) -> None:
    def request(question: str) -> ModelRequest:
        return ModelRequest(
            messages=(SystemMessage(content=INSTRUCTIONS), UserMessage(content=question))
        )

    first = await model.request(request("Refund order A17? #sim:out=30"))
    second = await model.request(request("Refund order B99?"))
    await model.aclose()

    rendered = f"<system>{INSTRUCTIONS}\n<user>Refund order "
    assert first.usage.input_tokens >= server.CACHE_MIN_TOKENS
    assert first.usage.cached_input_tokens == 0  # nothing to read yet
    assert first.usage.output_tokens == 30
    assert second.usage.cached_input_tokens == _expected_cached(len(rendered))
    assert 0 < second.usage.cached_input_tokens <= second.usage.input_tokens
    assert second.message.content == "ok"

    # the ledger bills the cached part at the cached price
    ledger = Ledger()
    charge = ledger.record(model.spec, second.usage)
    u = second.usage
    prices = model.spec.prices()
    expected = (
        (u.input_tokens - u.cached_input_tokens) * prices.input
        + u.cached_input_tokens * prices.cached_input
        + u.output_tokens * prices.output
    ) / Decimal(1_000_000)
    assert charge.cost == expected
    assert charge.cost < model.spec.cost(
        Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens)
    )


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1)


class Refund(BaseModel):
    order_id: str
    amount_cents: int
    reason: Literal["late", "damaged", "other"]
    lines: list[Line]
    note: str | None


async def test_structured_output_fits_the_schema_and_tools_are_called(
    model: OpenAIModel,
) -> None:
    calls: list[str] = []

    async def lookup_order(order_id: str) -> dict[str, Any]:
        """Look an order up.

        Args:
            order_id: The order's id.
        """
        calls.append(order_id)
        return {"order_id": order_id, "days_late": 5}

    agent: Agent[Refund] = Agent(
        name="refunder",
        instructions="Draft the refund.",
        tools=[as_tool(lookup_order)],
        output_type=Refund,
    )
    result = await agent.run("Refund order A17. #sim:call=lookup_order", model=model)
    await model.aclose()

    assert isinstance(result.output, Refund)
    assert result.output.reason == "late"  # the first enum member: a minimal instance
    assert result.turns == 2  # one tool call, then the answer
    assert calls == ["x"]
    assert result.usage.requests == 2


async def test_planted_failure_reaches_the_model_as_a_provider_error(
    model: OpenAIModel,
) -> None:
    request = ModelRequest(messages=(UserMessage(content="Hi #sim:fail=500@nano"),))
    with pytest.raises(ProviderError):
        await model.request(request)
    other = OpenAIModel("gpt-5.4-mini", base_url=model.base_url, api_key="sk-test")
    ok = await other.request(request)  # planted for nano only
    assert ok.message.content == "ok"
    await model.aclose()
    await other.aclose()


def test_minimal_instance_validates_and_counts_items() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "subtasks": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
            "mode": {"enum": ["fast", "slow"]},
            "limit": {"anyOf": [{"type": "integer", "minimum": 3}, {"type": "null"}]},
        },
        "required": ["subtasks", "mode", "limit"],
        "additionalProperties": False,
        "$defs": {
            "Step": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "agent": {"const": "echo"}},
                "required": ["id", "agent"],
                "additionalProperties": False,
            }
        },
    }
    value = server.minimal_instance(schema, counts={"subtasks": 3})
    jsonschema.validate(value, schema)
    assert [s["id"] for s in value["subtasks"]] == ["t0", "t1", "t2"]
    assert value["limit"] == 3


async def test_routing_economics_accounting_adds_up() -> None:
    world = routing.World.build(60, mix="agentic", seed=3)
    right = {tier: sum(1 for sid in world.subtasks if world.correct(sid, tier)) for tier in Tier}
    anyone = sum(1 for sid in world.subtasks if any(world.correct(sid, t) for t in Tier))
    for listed in routing.STRATEGIES:
        strategy = replace(listed, warmup=min(listed.warmup, 30))  # the warm-up, smaller
        r = await routing.run_strategy(strategy, world, concurrency=8)
        # every call the simulated models answered is in the ledger, at catalog prices
        assert r.cost == r.sim_cost
        assert 0 < r.attempt_cost <= r.cost
        assert r.succeeded + r.accepted_wrong + r.failed == r.subtasks == 60
        assert 0 <= r.succeeded <= 60
        assert r.attempts >= 60
        if strategy.router == "oracle":  # the cheapest right tier, where there is one
            assert r.succeeded == anyone
            assert r.attempts == 60
        elif strategy.escalate == "none":
            tier = Tier(strategy.router)
            assert r.succeeded == right[tier]  # no verifier: exactly the tier's right answers
            assert r.failed == r.escalations == 0
            assert r.attempts == 60
            assert r.attempt_cost == r.cost
        else:
            assert r.succeeded <= right[Tier.FLAGSHIP]
            # gain-aware defaults may retry on the same tier: attempts, not escalations
            assert r.attempts >= 60 + r.escalations
            if strategy.escalate != "shipped":
                assert r.attempts == 60 + r.escalations


def _framework(cpu: float, kb: float, kept: float, big_cpu: float) -> dict[str, Any]:
    return {
        "n": 5000,
        "concurrency": 500,
        "orchestrator_us": {"min": cpu, "median": cpu, "max": cpu},
        "kb_per_inflight": kb,
        "kb_kept_per_subtask": kept,
        "small": 1000,
        "big": 100000,
        "scale": {
            "1000": {"cpu_us": 100.0, "kept_kb_per_subtask": 1.0, "peak_kb_per_subtask": 5.0},
            "100000": {"cpu_us": big_cpu, "kept_kb_per_subtask": 1.1, "peak_kb_per_subtask": 1.2},
        },
        "chain": {
            "dependents_first": {"n": 10000, "seconds": 0.05, "us_per_subtask": 5.0},
            "dependents_first_1000": {"n": 1000, "seconds": 0.004, "us_per_subtask": 4.0},
        },
    }


def test_scale_report_says_met_or_missed_against_each_limit() -> None:
    results: dict[str, Any] = {
        "framework": _framework(cpu=79.0, kb=8.5, kept=1.9, big_cpu=125.0),
        "pacing": {
            "scenarios": [
                {
                    "paced": True,
                    "subtasks": 500,
                    "concurrency": 500,
                    "scenario": "rpm binds",
                    "server_429s": 0,
                    "steady_vs_limit": 0.95,
                },
                {
                    "paced": True,
                    "subtasks": 500,
                    "concurrency": 500,
                    "scenario": "tpm binds",
                    "server_429s": 3,
                    "steady_vs_limit": 0.85,
                },
                {
                    "paced": False,
                    "subtasks": 500,
                    "concurrency": 500,
                    "scenario": "unpaced",
                    "server_429s": 900,
                    "steady_vs_limit": None,
                },
            ]
        },
    }
    met = {(t["target"], t["subject"]): t["met"] for t in scale_report.targets(results)}
    by_name: dict[str, list[bool | None]] = {}
    for (name, _), value in met.items():
        by_name.setdefault(name, []).append(value)
    assert by_name["framework alone: CPU per subtask (fastest round)"] == [True]
    assert by_name["framework alone: memory growing with concurrency, per in-flight subtask"] == [
        False
    ]
    assert by_name["framework alone: memory kept per finished subtask"] == [True]
    assert by_name["100,000 vs 1,000 subtasks: CPU per subtask"] == [False]  # 1.25x
    assert by_name["100,000 vs 1,000 subtasks: memory kept per subtask"] == [True]
    assert any(name.startswith("plan check") and v == [True] for name, v in by_name.items())
    # the unpaced scenario is a comparison, not a target
    assert by_name["pacing: 429s from the server"] == [True, False]
    assert by_name["pacing: steady throughput / the binding limit's rate"] == [True, False]


def test_a_chain_check_that_fails_is_a_missed_target() -> None:
    fw = _framework(cpu=50.0, kb=4.0, kept=1.0, big_cpu=100.0)
    fw["chain"]["dependents_first"] = {"n": 10000, "error": "RecursionError"}
    checks = [t for t in scale_report.targets({"framework": fw}) if "chain" in t["target"]]
    assert [(t["subject"], t["met"]) for t in checks] == [("RecursionError", False)]


@pytest.mark.slow
async def test_framework_bench_quick_run_measures_every_figure() -> None:
    # the machinery only: tiny sizes, no figure is compared against a limit here
    out = await scheduler.measure(n=200, big=600, small=200)
    assert len(out["cpu_rounds"]) == 3
    assert all(r["agent_us"] > 0 and r["orchestrator_us"] > 0 for r in out["cpu_rounds"])
    assert out["memory"]["500"]["kept"] > 0  # the result holds its 200 subtasks
    assert out["kb_kept_per_subtask"] > 0
    assert set(out["scale"]) == {"200", "600"}
    assert all("seconds" in c for c in out["chain"].values())  # no RecursionError
    assert out["before"]["nproc"] == out["after"]["nproc"] >= 1
    lines = scale_report.framework_section(out)
    assert any("check_plan" in line for line in lines)
