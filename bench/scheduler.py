"""The orchestrator alone at scale: CPU and memory per subtask, framework only (no HTTP).

    python -m bench.scheduler [--quick]

One process, one in-process model answering after a sleep, so `concurrency` subtasks
are really in flight. Figures (all ratios are read within this one run):
- CPU per subtask of `Orchestrator.run` against plain `Agent.run` fanned out the same way;
- memory that grows with concurrency: (peak at 500 - peak at 50) / 450 per in-flight
  subtask (tracemalloc), i.e. tasks, events and waits;
- memory kept per finished subtask: what the finished `RunResult` holds, per subtask;
- 1,000 against 100,000 subtasks: CPU and memory per subtask should stay within 20%;
- `check_plan` on a 10,000-subtask chain, listed both ways (linear, no RecursionError).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from tiered import (
    Agent,
    AssistantMessage,
    Limits,
    ModelResponse,
    Orchestrator,
    Plan,
    Subtask,
    Tier,
    Usage,
    check_plan,
    default_catalog,
)

LATENCY_S = 0.02


class Sleepy:
    """A model that answers 'ok' after `LATENCY_S` (metered at the OpenAI tier's prices)."""

    def __init__(self, tier: Tier) -> None:
        self.spec = default_catalog().for_tier(tier)
        self.response = ModelResponse(
            message=AssistantMessage(content="ok"),
            usage=Usage(input_tokens=30, output_tokens=1, requests=1),
            model_name=self.spec.name,
        )

    async def request(self, request: Any) -> ModelResponse:
        await asyncio.sleep(LATENCY_S)
        return self.response

    async def aclose(self) -> None:
        """Nothing to release."""


MODELS: dict[Tier, Any] = {t: Sleepy(t) for t in Tier}
ECHO = Agent(name="echo", instructions="Repeat the record's status in one word.")


def flat_plan(n: int) -> Plan:
    return Plan(
        subtasks=tuple(
            Subtask(id=f"t{i}", agent="echo", instructions="Check it.", arguments={"input": "x"})
            for i in range(n)
        )
    )


async def orchestrated(plan: Plan, concurrency: int) -> Any:
    orch = Orchestrator([ECHO], limits=Limits(concurrency=concurrency), models=MODELS)
    return await orch.run("Check the records.", plan=plan, compose=False)


async def agents(n: int, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await ECHO.run("x", model=MODELS[Tier.NANO])

    await asyncio.gather(*(one() for _ in range(n)))


async def cpu_us(run: Callable[[], Awaitable[Any]], n: int) -> float:
    gc.collect()
    c0 = time.process_time()
    await run()
    return (time.process_time() - c0) / n * 1e6


async def peak_and_kept(plan: Plan, concurrency: int) -> tuple[int, int]:
    """(peak bytes during the run, bytes still held by its result), above the baseline."""
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    result = await orchestrated(plan, concurrency)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - base
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return peak, kept


def chain_check_s(n: int, *, reverse: bool) -> float | str:
    chain = [Subtask(id="s0", agent="echo", instructions="x", arguments={"input": "x"})]
    chain += [
        Subtask(
            id=f"s{i}",
            agent="echo",
            instructions="x",
            arguments={"input": "x"},
            depends_on=(f"s{i - 1}",),
        )
        for i in range(1, n)
    ]
    if reverse:
        chain.reverse()
    plan = Plan(subtasks=tuple(chain))
    t0 = time.perf_counter()
    try:
        problems = check_plan(plan, {"echo": ECHO})
    except RecursionError:
        return "RecursionError"
    elapsed = time.perf_counter() - t0
    if problems:
        return f"{len(problems)} false problems, e.g. {problems[0]}"
    return elapsed


async def main(quick: bool) -> dict[str, Any]:
    sizes = (1_000, 10_000) if quick else (1_000, 5_000, 100_000)
    out: dict[str, Any] = {"latency_s": LATENCY_S, "loadavg": os.getloadavg()}
    plans = {n: flat_plan(n) for n in sizes}
    await orchestrated(plans[sizes[0]], 500)  # warm
    await agents(1_000, 500)
    rounds = []
    for _ in range(3):  # interleaved, so drift in machine speed hits both alike
        a = await cpu_us(lambda: agents(5_000, 500), 5_000)
        o = await cpu_us(lambda: orchestrated(plans[sizes[1]], 500), sizes[1])
        rounds.append({"agent_us": a, "orchestrator_us": o, "ratio": o / a})
    out["cpu_rounds"] = rounds
    out["cpu_ratio_min"] = min(r["ratio"] for r in rounds)
    out["orchestrator_us_min"] = min(r["orchestrator_us"] for r in rounds)
    out["agent_us_min"] = min(r["agent_us"] for r in rounds)
    peak500, _ = await peak_and_kept(plans[sizes[1]], 500)
    peak50, kept = await peak_and_kept(plans[sizes[1]], 50)
    out["kb_per_inflight"] = (peak500 - peak50) / 450 / 1024
    out["kb_kept_per_subtask"] = kept / sizes[1] / 1024
    scale: dict[str, Any] = {}
    for n in (sizes[0], sizes[-1]):
        cpu = await cpu_us(lambda n=n: orchestrated(plans[n], 500), n)  # type: ignore[misc]
        peak, kept_n = await peak_and_kept(plans[n], 500)
        scale[str(n)] = {
            "cpu_us": cpu,
            "peak_kb_per_subtask": peak / n / 1024,
            "kept_kb_per_subtask": kept_n / n / 1024,
        }
    out["scale"] = scale
    out["chain_10000_check_s"] = {
        "dependencies_first": chain_check_s(10_000, reverse=False),
        "dependents_first": chain_check_s(10_000, reverse=True),
        "dependents_first_1000": chain_check_s(1_000, reverse=True),
    }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    args = parser.parse_args()
    sys.setrecursionlimit(1_000)  # the default: a recursive plan check would fail here
    print(json.dumps(asyncio.run(main(args.quick)), indent=2))
