"""The framework alone at scale: CPU and memory per subtask, no HTTP, no SDK.

    python -m bench.scheduler [--quick]         # prints one JSON object
    python -m bench --only framework            # the same, into bench/results.json

One process, one in-process model answering after `LATENCY_S`, so `concurrency` subtasks
are really in flight. Every figure is read within this one run:
- CPU per subtask of `Orchestrator.run` (a given plan, no planner, no synthesis) and of
  plain `Agent.run` in a pool of lanes, in interleaved rounds so drift in the machine's
  speed hits both alike (with the speed loop of `bench.report.calibrate` per round);
- memory that grows with concurrency: (peak at 500 - peak at 50) / 450 per in-flight
  subtask (tracemalloc): the tasks, events and waits of the subtasks running;
- memory kept per finished subtask: what the finished `RunResult` still holds, per subtask;
- 1,000 against 100,000 subtasks: CPU and memory per subtask should stay within 20%;
- `check_plan` on a 10,000-subtask chain, listed both ways (linear time, no RecursionError).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from bench.report import calibrate
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

__all__ = ("machine_state", "measure")

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


MODELS: dict[Tier, Any] = {t: Sleepy(t) for t in (Tier.NANO, Tier.MINI, Tier.FLAGSHIP)}
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
    """`n` plain `Agent.run`s with exactly `concurrency` in flight (lanes on one counter)."""
    indices = iter(range(n))
    model = MODELS[Tier.NANO]

    async def lane() -> None:
        for _ in indices:
            await ECHO.run("x", model=model)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def cpu_us(run: Callable[[], Awaitable[Any]], n: int) -> float:
    gc.collect()
    c0 = time.process_time()
    await run()
    return (time.process_time() - c0) / n * 1e6


async def traced(run: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """(peak bytes during `run`, bytes its return value still holds), above the baseline."""
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    result = await run()
    gc.collect()
    kept, peak = (x - base for x in tracemalloc.get_traced_memory())
    tracemalloc.stop()
    del result
    gc.collect()
    return peak, kept


def chain_plan(n: int, *, reverse: bool) -> Plan:
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
    return Plan(subtasks=tuple(chain))


def chain_check(n: int, *, reverse: bool) -> dict[str, Any]:
    """Seconds `check_plan` takes on an `n`-subtask chain (best of 7), or what went wrong."""
    plan = chain_plan(n, reverse=reverse)
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        try:
            problems = check_plan(plan, {"echo": ECHO})
        except RecursionError:
            return {"n": n, "error": "RecursionError"}
        best = min(best, time.perf_counter() - t0)
        if problems:
            return {"n": n, "error": f"{len(problems)} false problems, e.g. {problems[0]}"}
    return {"n": n, "seconds": best, "us_per_subtask": best / n * 1e6}


def machine_state() -> dict[str, Any]:
    """nproc, load average and `uptime` now, and the speed loop (CPU ms, lower is faster)."""
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
        up = uptime.stdout.strip()
    except OSError:
        up = ""
    return {
        "time": time.strftime("%H:%M:%S"),
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "uptime": up,
        "speed_loop_ms": calibrate(),
    }


async def measure(
    *, quick: bool = False, n: int | None = None, big: int | None = None, small: int = 1_000
) -> dict[str, Any]:
    """Every figure of the module docstring, with the machine's state before and after.

    `n` (5,000; 1,000 quick) subtasks for CPU and memory; `big` (100,000; 10,000 quick)
    against `small` for the scale comparison."""
    n = n or (1_000 if quick else 5_000)
    big = big or (10_000 if quick else 100_000)
    out: dict[str, Any] = {
        "latency_s": LATENCY_S,
        "n": n,
        "concurrency": 500,
        "python": platform.python_version(),
        "before": machine_state(),
    }
    plan = flat_plan(n)
    await orchestrated(plan, 500)  # warm both paths
    await agents(1_000, 500)
    rounds = []
    for _ in range(2 if quick else 3):  # interleaved, so drift in machine speed hits both
        speed = calibrate()
        a = await cpu_us(lambda: agents(n, 500), n)
        o = await cpu_us(lambda: orchestrated(plan, 500), n)
        rounds.append({"speed_loop_ms": speed, "agent_us": a, "orchestrator_us": o, "ratio": o / a})
    out["cpu_rounds"] = rounds
    for key in ("agent_us", "orchestrator_us", "ratio"):
        values = [r[key] for r in rounds]
        out[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}

    memory: dict[str, Any] = {}
    for concurrency in (500, 50):
        peak, kept = await traced(partial(orchestrated, plan, concurrency))
        apeak, _ = await traced(partial(agents, n, concurrency))
        memory[str(concurrency)] = {"orchestrator_peak": peak, "kept": kept, "agent_peak": apeak}
    out["memory"] = memory
    span = 500 - 50
    for key, path in (
        ("kb_per_inflight", "orchestrator_peak"),
        ("agent_kb_per_inflight", "agent_peak"),
    ):
        out[key] = (memory["500"][path] - memory["50"][path]) / span / 1024
    out["kb_kept_per_subtask"] = memory["500"]["kept"] / n / 1024

    small_plan, big_plan = flat_plan(small), flat_plan(big)
    scale: dict[str, Any] = {}
    cpu_small = [await cpu_us(lambda: orchestrated(small_plan, 500), small)]
    cpu_big = await cpu_us(lambda: orchestrated(big_plan, 500), big)
    cpu_small.append(await cpu_us(lambda: orchestrated(small_plan, 500), small))
    for size, sized in ((small, small_plan), (big, big_plan)):
        peak, kept = await traced(partial(orchestrated, sized, 500))
        scale[str(size)] = {
            "cpu_us": statistics.mean(cpu_small) if size == small else cpu_big,
            "peak_kb_per_subtask": peak / size / 1024,
            "kept_kb_per_subtask": kept / size / 1024,
        }
    scale[str(small)]["cpu_us_runs"] = cpu_small
    out["scale"] = scale
    out["small"] = small
    out["big"] = big

    sys_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000)  # the default: a recursive plan check would fail here
    try:
        out["chain"] = {
            "dependencies_first": chain_check(10_000, reverse=False),
            "dependents_first": chain_check(10_000, reverse=True),
            "dependents_first_1000": chain_check(1_000, reverse=True),
        }
    finally:
        sys.setrecursionlimit(sys_limit)
    out["after"] = machine_state()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(quick=args.quick)), indent=2))
