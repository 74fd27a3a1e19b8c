"""Whole runs against the fault-injecting loopback server (bench/faults.py), through the
real OpenAIModel, RetryingModel and pacing: faults end every subtask with a reason and
the ledger equals what the server reported; pacing keeps a wide fan-out under the RPM
limit; a budget holds at concurrency 64; a 429 storm never moves a subtask up a tier."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from orchestration_support import Echo, subtask
from test_faults import FaultServer  # type: ignore[attr-defined]
from tiered import (
    Budget,
    Limits,
    Orchestrator,
    Plan,
    RunEvent,
    RunStatus,
    SubtaskFinished,
    SubtaskStatus,
    Tier,
    default_catalog,
)
from tiered.models import (
    CircuitBreaker,
    Ladder,
    OpenAIModel,
    RateLimits,
    RetryingModel,
    pace_ladder,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


def ladder(server: FaultServer, *, read_timeout: float = 10.0) -> dict[Tier, Any]:
    cat = default_catalog()
    breaker = CircuitBreaker(threshold=50)  # a fault mix should not open the circuit here
    return {
        t: RetryingModel(
            OpenAIModel(
                cat.for_tier(t).name,
                base_url=server.base_url,
                api_key="sk-test",
                read_timeout=read_timeout,
            ),
            base_delay=0.01,
            max_delay=0.2,
            breaker=breaker,
        )
        for t in Tier
    }


def flat(n: int) -> Plan:
    return Plan(subtasks=tuple(subtask(f"s{i}", text=f"record {i}") for i in range(n)))


async def close(models: dict[Tier, Any]) -> None:
    for m in models.values():
        await m.aclose()


async def test_200_subtasks_at_20_percent_faults_end_with_reasons_and_exact_usage(
    server: FaultServer,
) -> None:
    server.configure(
        faults={
            "429": 0.04,
            "500": 0.04,
            "503": 0.03,
            "drop": 0.03,
            "badjson": 0.03,
            "schema": 0.02,
            "slow": 0.01,
        },
        retry_after=0.05,
        slow=1.5,
    )
    models = ladder(server, read_timeout=0.5)
    finished: list[str] = []

    def on_event(event: RunEvent) -> None:
        if isinstance(event, SubtaskFinished):
            finished.append(event.subtask_id)

    orch = Orchestrator([Echo()], models=models, limits=Limits(concurrency=32))
    result = await orch.run(
        "go",
        plan=flat(200),
        compose=False,
        on_event=on_event,
    )
    await close(models)
    statuses = {r.status for r in result.subtasks.values()}
    assert statuses <= {SubtaskStatus.SUCCEEDED, SubtaskStatus.FAILED, SubtaskStatus.SKIPPED}
    for r in result.subtasks.values():
        if r.status is not SubtaskStatus.SUCCEEDED:
            assert r.error  # every one that did not succeed says why
    assert sorted(finished) == sorted(result.outputs)  # no finished result is lost
    assert len(result.outputs) >= 190  # retries on the same model absorb most faults
    reported = server.stats()["reported"]
    assert result.usage.input_tokens == reported["prompt_tokens"]
    assert result.usage.output_tokens == reported["completion_tokens"]
    assert result.usage.requests == reported["requests"]


async def test_pacing_keeps_a_wide_fan_out_under_the_rpm_limit(server: FaultServer) -> None:
    # 1,200 RPM scaled down to 120 requests per 6 s; 160 subtasks all in flight at once.
    # Two seconds of headroom: a loaded CI machine can stall this process's event loop
    # for over a second, and sends delayed that long arrive bunched (bench.pacing
    # measures the default headroom on a quiet machine).
    server.configure(rpm=120, window=6.0)
    models = ladder(server)
    paced = pace_ladder(Ladder(models), RateLimits(rpm=120, period=6.0, headroom=2.0))
    orch = Orchestrator([Echo()], models=paced, limits=Limits(concurrency=500))
    result = await orch.run("go", plan=flat(160), compose=False)
    await close(models)
    assert result.status is RunStatus.SUCCEEDED
    assert server.stats()["enforced_429"] == 0


async def test_a_budget_holds_at_concurrency_64_and_unstarted_work_is_skipped(
    server: FaultServer,
) -> None:
    server.configure(latency=0.05)
    models = ladder(server)
    budget = Decimal("0.004")
    orch = Orchestrator(
        [Echo(max_output_tokens=50)],
        models=models,
        limits=Limits(concurrency=64),
        budget=Budget(usd=budget),
    )
    result = await orch.run("go", plan=flat(300), compose=False)
    await close(models)
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.cost <= budget
    unstarted = [r for r in result.subtasks.values() if not r.attempts]
    assert unstarted
    assert all(r.status is SubtaskStatus.SKIPPED for r in unstarted)
    assert all(r.error and "budget" in r.error for r in unstarted)
    assert result.outputs  # the work that fitted is kept


async def test_a_storm_of_429s_is_waited_out_on_the_same_tier(server: FaultServer) -> None:
    models = ladder(server)
    server.configure(storm=2.0, retry_after=0.2)
    orch = Orchestrator([Echo()], models=models, limits=Limits(concurrency=8))
    result = await orch.run("go", plan=flat(8), compose=False)
    await close(models)
    assert result.status is RunStatus.SUCCEEDED
    for r in result.subtasks.values():
        assert r.tier_path == [Tier.NANO]  # no subtask changed tier because of the storm
    assert result.wall_time_s >= 1.5  # they finished after the storm


@pytest.mark.slow
async def test_a_30_second_storm_of_429s_changes_no_tier_and_loses_nothing(
    server: FaultServer,
) -> None:
    models = ladder(server)
    server.configure(storm=30.0, retry_after=1.0)
    orch = Orchestrator([Echo()], models=models, limits=Limits(concurrency=16))
    result = await orch.run("go", plan=flat(40), compose=False)
    await close(models)
    assert result.status is RunStatus.SUCCEEDED
    assert len(result.outputs) == 40
    for r in result.subtasks.values():
        assert r.tier_path == [Tier.NANO]  # waited out on the same tier, never escalated
        assert len(r.attempts) == 1  # a rate limit is not a failed attempt
    assert result.wall_time_s >= 29  # nothing finished inside the storm
    assert server.stats()["faults"]["storm"] > 40  # it was a storm: every first try refused
