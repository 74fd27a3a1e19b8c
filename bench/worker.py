"""Measurements that run in a child process, so CPU time and peak RSS are the contender's own.

`python -m bench.worker KIND JSON` runs one measurement against a running simulator and
prints one line `RESULT {json}`. The driver (`bench.__main__`) starts the simulator, sets
its latency, spawns these and collects the lines.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bench.clients import Contender, make

__all__ = (
    "fanout",
    "framework_only",
    "interleaved",
    "orchestrated",
    "pacing",
    "prompt_caching",
)


def rss_bytes() -> int:
    """Resident set size now (from /proc; psutil when /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process.

    `VmHWM` from /proc: `ru_maxrss` would not do, because Linux carries the parent's
    high-water mark across exec into a spawned child.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- sequential, interleaved: client CPU per call ----------------------------------------


async def interleaved(
    base_url: str, names: list[str], *, blocks: int, per_block: int, warmup: int, tool: bool
) -> dict[str, Any]:
    """CPU and wall per call (or per tool run) for each contender, in rotating blocks.

    Every contender runs `per_block` calls, then the next contender, and so on; the order
    rotates each block so no contender always follows the same one. Returns per-block
    microseconds for each contender that could be set up, and the errors of those that
    could not.
    """
    ready: dict[str, Contender] = {}
    errors: dict[str, str] = {}
    for name in names:
        c = make(name)
        if tool and not c.tool_loop:
            continue
        try:
            await c.setup(base_url)
            fn = c.tool_run if tool else c.single
            for _ in range(warmup):
                await fn()
        except Exception as exc:  # a peer that cannot install or talk to us: note it, go on
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        ready[name] = c
    # everything imported and warmed so far is long-lived: keep the collector from rescanning
    # one contender's modules while timing another
    gc.collect()
    gc.freeze()
    cpu: dict[str, list[float]] = {n: [] for n in ready}
    own: dict[str, list[float]] = {}
    """CPU per call outside the SDK call, for contenders that time it from inside."""
    wall: dict[str, list[float]] = {n: [] for n in ready}
    order = list(ready)
    for b in range(blocks):
        rotated = order[b % len(order) :] + order[: b % len(order)] if order else []
        for name in rotated:
            c = ready[name]
            fn = c.tool_run if tool else c.single
            gc.collect()
            inside0 = getattr(c, "inside_s", None)
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(per_block):
                await fn()
            c1, w1 = time.process_time(), time.perf_counter()
            cpu[name].append((c1 - c0) / per_block * 1e6)
            wall[name].append((w1 - w0) / per_block * 1e6)
            if inside0 is not None:
                inside = getattr(c, "inside_s", 0.0) - inside0
                own.setdefault(name, []).append((c1 - c0 - inside) / per_block * 1e6)
    for c in ready.values():
        await c.close()
    return {
        "cpu_us": cpu,
        "wall_us": wall,
        "own_us": own,
        "errors": errors,
        "per_block": per_block,
    }


# --- fan-out: makespan and memory --------------------------------------------------------


async def _pool(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> int:
    """Run `one(i)` for i in range(n) with exactly `concurrency` in flight; count failures."""
    indices = iter(range(n))
    failures = 0

    async def lane() -> None:
        nonlocal failures
        for i in indices:
            try:
                await one(i)
            except Exception:
                failures += 1

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return failures


async def fanout(base_url: str, name: str, *, n: int, concurrency: int) -> dict[str, Any]:
    """n single-turn calls, `concurrency` at a time: makespan, client CPU, peak RSS."""
    _raise_fd_limit()
    c = make(name)
    await c.setup(base_url)
    for _ in range(5):
        await c.single()
    gc.collect()
    rss0 = rss_bytes()
    c0, w0 = time.process_time(), time.perf_counter()
    failures = await _pool(n, concurrency, lambda _: c.single())
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    peak = peak_rss_bytes()
    await c.close()
    return {
        "contender": name,
        "n": n,
        "concurrency": concurrency,
        "makespan_s": wall,
        "cpu_s": cpu,
        "failures": failures,
        "rss_before": rss0,
        "peak_rss": peak,
    }


# --- the orchestrated run ----------------------------------------------------------------


async def orchestrated(
    base_url: str, transport: str, *, n: int, concurrency: int, plan_given: bool = False
) -> dict[str, Any]:
    """Plan -> n subtasks -> synthesis through `Orchestrator`, every model over HTTP.

    With `plan_given` the plan is passed in (no planner call): a planner reply of
    thousands of subtasks is over the untrusted-JSON limits (`tiered._json.MAX_VALUES`)."""
    _raise_fd_limit()
    from bench.clients import TieredModelHandle
    from tiered import Agent, Limits, Orchestrator, Planner, Tier
    from tiered.models import OpenAIModel

    handles = {
        Tier.NANO: TieredModelHandle(base_url, transport, "gpt-5.4-nano"),
        Tier.MINI: TieredModelHandle(base_url, transport, "gpt-5.4-mini"),
        Tier.FLAGSHIP: TieredModelHandle(base_url, transport, "gpt-5.4"),
    }
    models: dict[Tier, OpenAIModel] = {t: h.model for t, h in handles.items()}
    echo = Agent(name="echo", instructions="Repeat the record's status in one word.")
    orchestrator = Orchestrator(
        [echo],
        planner=Planner(max_subtasks=n),
        limits=Limits(concurrency=concurrency),
        models=models,
    )
    # warm the path once with a tiny run
    await orchestrator.run("Warm up. #sim:items=subtasks:2")
    gc.collect()
    rss0 = rss_bytes()
    marks: dict[str, tuple[float, float]] = {}

    def on_event(event: Any) -> None:
        # CPU and wall at the end of planning and at the last subtask's end, by phase
        if event.name == "plan.created":
            marks["planned"] = (time.process_time(), time.perf_counter())
        elif event.name in ("subtask.finished", "subtask.failed", "subtask.skipped"):
            marks["executed"] = (time.process_time(), time.perf_counter())

    from tiered import Plan, Subtask

    plan = (
        Plan(
            subtasks=tuple(
                Subtask(
                    id=f"t{i}", agent="echo", instructions="Check it.", arguments={"input": "x"}
                )
                for i in range(n)
            )
        )
        if plan_given
        else None
    )
    c0, w0 = time.process_time(), time.perf_counter()
    result = await orchestrator.run(
        f"Check {n} records. #sim:items=subtasks:{n}", plan=plan, on_event=on_event
    )
    c1, w1 = time.process_time(), time.perf_counter()
    wall, cpu = w1 - w0, c1 - c0
    peak = peak_rss_bytes()
    (cp, wp), (ce, we) = marks["planned"], marks["executed"]
    phases = {
        "plan": {"cpu_s": cp - c0, "wall_s": wp - w0},
        "execute": {"cpu_s": ce - cp, "wall_s": we - wp},
        "synthesis": {"cpu_s": c1 - ce, "wall_s": w1 - we},
    }
    succeeded = sum(1 for r in result.subtasks.values() if r.status.value == "succeeded")
    for h in handles.values():
        await h.aclose()
    return {
        "transport": transport,
        "n": n,
        "concurrency": concurrency,
        "plan_given": plan_given,
        "makespan_s": wall,
        "cpu_s": cpu,
        "succeeded": succeeded,
        "status": result.status.value,
        "requests": result.usage.requests,
        "final_answer": str(result.final_answer)[:40],
        "phases": phases,
        "rss_before": rss0,
        "peak_rss": peak,
    }


# --- the framework alone, in process ------------------------------------------------------


async def framework_only(*, quick: bool, **sizes: int) -> dict[str, Any]:
    """`Agent.run` and `Orchestrator.run` on an in-process model (see `bench.scheduler`)."""
    from bench.scheduler import measure

    return await measure(quick=quick, **sizes)


async def pacing(*, quick: bool) -> dict[str, Any]:
    """Subtasks through the orchestrator against a server enforcing RPM and TPM (see
    `bench.pacing`)."""
    from bench.pacing import measure

    return await measure(quick=quick)


# --- prompt caching ----------------------------------------------------------------------

_CACHE_INSTRUCTIONS = (
    "You review one customer support ticket and classify it. Follow the policy below.\n"
    + "\n".join(
        f"Policy {i}: tickets that mention topic {i} go to queue {i % 7}; quote the clause, "
        "keep the customer's wording, never promise refunds above the order total."
        for i in range(45)
    )
)


async def prompt_caching(
    base_url: str, *, n: int, concurrency: int, transport: str
) -> dict[str, Any]:
    """Bulk fan-out of one nano agent, cache-friendly layout vs the variable part first."""
    from pydantic import BaseModel

    from bench.clients import TieredModelHandle
    from tiered import Agent, Ledger, tool

    class Ticket(BaseModel):
        queue: int
        clause: str

    @tool
    def lookup_customer(customer_id: str) -> str:
        """Look a customer up by id.

        Args:
            customer_id: The customer's id.
        """
        return customer_id

    handle = TieredModelHandle(base_url, transport)
    model = handle.model
    friendly = Agent(
        name="ticket_classifier",
        instructions=_CACHE_INSTRUCTIONS,
        tools=[lookup_customer],
        output_type=Ticket,
    )

    def ticket(i: int) -> str:
        return (
            f"Ticket #{i}: customer C{i * 7919 % 10007} writes that order O{i} arrived "
            f"{i % 9} days late and the box was damaged; they ask about topic {i % 45}."
        )

    out: dict[str, Any] = {}
    for layout in ("friendly", "hostile"):
        ledger = Ledger()

        async def one_friendly(i: int, ledger: Ledger = ledger) -> None:
            await friendly.run(ticket(i), model=model, ledger=ledger)

        async def one_hostile(i: int, ledger: Ledger = ledger) -> None:
            # the variable part first: the ticket leads the system prompt
            hostile = Agent(
                name="ticket_classifier",
                instructions=f"{ticket(i)}\n\n{_CACHE_INSTRUCTIONS}",
                tools=[lookup_customer],
                output_type=Ticket,
            )
            await hostile.run("Classify the ticket above.", model=model, ledger=ledger)

        one = one_friendly if layout == "friendly" else one_hostile
        await _pool(n, concurrency, one)
        u = ledger.usage
        out[layout] = {
            "requests": u.requests,
            "input_tokens": u.input_tokens,
            "cached_input_tokens": u.cached_input_tokens,
            "output_tokens": u.output_tokens,
            "cost_usd": str(ledger.cost),
            "cached_share": u.cached_input_tokens / u.input_tokens if u.input_tokens else 0.0,
        }
    await handle.aclose()
    return out


def main(argv: list[str]) -> None:
    kind, raw = argv[0], json.loads(argv[1])
    functions: dict[str, Callable[..., Coroutine[Any, Any, dict[str, Any]]]] = {
        "interleaved": interleaved,
        "fanout": fanout,
        "orchestrated": orchestrated,
        "framework_only": framework_only,
        "pacing": pacing,
        "prompt_caching": prompt_caching,
    }
    try:
        result: dict[str, Any] = asyncio.run(functions[kind](**raw))
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
