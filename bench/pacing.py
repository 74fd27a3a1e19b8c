"""Pacing: N subtasks at concurrency N through `Orchestrator.run` against `FaultServer`
enforcing an RPM and a TPM limit, with the ladder paced by `RateLimits`, and without.

    python -m bench.pacing [--quick]        # prints one JSON object
    python -m bench --only pacing           # the same, into bench/results.json

The rate is the real one (600 RPM = 10 requests per second) but the window is shorter:
the server and the pacer count `rpm * window / 60` requests (and `tpm * window / 60`
tokens) per `window` seconds, refilled continuously, so the burst is a window's worth
and a 500-subtask run takes under a minute instead of ten. The pacer's headroom stays at
its default second (it covers network and client delay, which do not scale). Figures per
scenario: 429s the server sent, makespan against the least the limit allows, and the
steady throughput after the initial burst (server-side arrival times) against the
binding limit's rate.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio

from bench.faults import FaultConfig, FaultServer
from tiered import Agent, Limits, Orchestrator, Plan, Subtask, Tier, default_catalog
from tiered.models import Ladder, OpenAIModel, RateLimits, RetryingModel, pace_ladder

__all__ = ("measure",)

RPM = 600
MAX_OUTPUT = 200
ECHO = Agent(
    name="echo",
    instructions="Repeat the record's status in one word.",
    max_output_tokens=MAX_OUTPUT,
)


def _plan(n: int) -> Plan:
    return Plan(
        subtasks=tuple(
            Subtask(id=f"t{i}", agent="echo", instructions="Check it.", arguments={"input": "x"})
            for i in range(n)
        )
    )


def _ladder(server: FaultServer) -> dict[Tier, RetryingModel]:
    cat = default_catalog()
    return {
        t: RetryingModel(
            OpenAIModel(cat.for_tier(t).name, base_url=server.base_url, api_key="bench"),
            max_attempts=10,
            base_delay=0.05,
        )
        for t in (Tier.NANO, Tier.MINI, Tier.FLAGSHIP)
    }


async def scenario(
    name: str, *, n: int, window: float, tpm: int, paced: bool, latency: float
) -> dict[str, Any]:
    """One run of `n` subtasks at concurrency `n`; the server enforces `RPM` and `tpm`."""
    per_window = RPM * window / 60
    tokens_per_window = tpm * window / 60
    config = FaultConfig(
        rpm=round(per_window), tpm=round(tokens_per_window), window=window, latency=latency
    )
    with FaultServer(config) as server:
        models = _ladder(server)
        limits = RateLimits(rpm=round(per_window), tpm=round(tokens_per_window), period=window)
        ladder = pace_ladder(Ladder(models), limits) if paced else Ladder(models)
        orch = Orchestrator([ECHO], models=ladder, limits=Limits(concurrency=n))
        started = time.monotonic()
        result = await orch.run("Check the records.", plan=_plan(n), compose=False)
        wall = time.monotonic() - started
        for m in models.values():
            await m.aclose()
        stats = server.stats()
    arrivals = sorted(t for times in stats["times"].values() for t in times)
    accepted = stats["requests"] - stats["enforced_429"]
    reported = stats["reported"]
    tokens_per_request = (
        (reported.get("prompt_tokens", 0) + reported.get("completion_tokens", 0))
        / reported["requests"]
        if reported.get("requests")
        else 0.0
    )
    rpm_rate = per_window / window
    tpm_rate = tokens_per_window / window / tokens_per_request if tokens_per_request else rpm_rate
    limit_rate = min(rpm_rate, tpm_rate)
    binding = "rpm" if rpm_rate <= tpm_rate else "tpm"
    burst = int(per_window - per_window / window * limits.headroom)  # the pacer's first draw
    steady = arrivals[burst:] if paced else []
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else None
    ideal = max(n - per_window, 0) / limit_rate  # the server's burst, then its refill rate
    succeeded = sum(1 for r in result.subtasks.values() if r.status.value == "succeeded")
    return {
        "scenario": name,
        "paced": paced,
        "subtasks": n,
        "concurrency": n,
        "window_s": window,
        "server_rpm": RPM,
        "server_tpm": tpm,
        "per_window": {"requests": per_window, "tokens": tokens_per_window},
        "latency_s": latency,
        "status": result.status.value,
        "succeeded": succeeded,
        "requests": stats["requests"],
        "accepted": accepted,
        "server_429s": stats["enforced_429"],
        "tokens_per_request": round(tokens_per_request, 1),
        "binding": binding,
        "limit_per_s": round(limit_rate, 3),
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "wall_vs_ideal": round(wall / ideal, 3) if ideal else None,
        "steady_per_s": round(rate, 3) if rate is not None else None,
        "steady_vs_limit": round(rate / limit_rate, 3) if rate is not None else None,
    }


async def measure(*, quick: bool = False) -> dict[str, Any]:
    """The paced scenarios (RPM binding, TPM binding) and the unpaced one, in turn."""
    n, window = (100, 2.0) if quick else (500, 6.0)
    latency = 0.2
    # These requests use about 210 tokens each (prompt with the escalate tool, one output
    # token). RPM binds: 200,000 TPM is 1.6x what 600 of them a minute use. TPM binds:
    # 60,000 TPM is about 290 of them a minute, half the RPM's rate.
    runs = [
        ("rpm binds", 200_000, True),
        ("tpm binds", 60_000, True),
        ("unpaced (rpm binds)", 200_000, False),
    ]
    out: dict[str, Any] = {"scenarios": []}
    for name, tpm, paced in runs:
        out["scenarios"].append(
            await scenario(name, n=n, window=window, tpm=tpm, paced=paced, latency=latency)
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100 subtasks in 2 s windows")
    args = parser.parse_args()
    print(json.dumps(anyio.run(lambda: measure(quick=args.quick)), indent=2))
