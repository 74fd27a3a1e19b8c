"""Pacing throughput: N requests at concurrency N against a server enforcing an RPM/TPM
limit, through `RetryingModel(PacedModel(OpenAIModel))`, versus the same without pacing.

    python -m bench.pacing                       # 500 requests, 100 per 2 s window
    python -m bench.pacing --requests 500 --limit 600 --window 60   # real time: 600 RPM

Time is scaled by the window: `--limit 100 --window 2` is 3,000 RPM's shape in 2-second
windows, so a run takes seconds; the pacer's headroom stays at its default second (it
covers network and client delay, which do not scale). Prints one JSON object per mode:
429s the server sent, wall time, and the steady throughput after the initial burst as
a fraction of the limit's rate.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio

from bench.faults import FaultConfig, FaultServer
from tiered import ModelRequest, UserMessage
from tiered.models import OpenAIModel, PacedModel, RateLimits, RetryingModel


async def _run(server: FaultServer, n: int, paced: bool, limit: int, window: float) -> Any:
    inner = OpenAIModel("gpt-5.4-nano", base_url=server.base_url, api_key="bench")
    limits = RateLimits(rpm=limit, tpm=limit * 1_000, period=window)
    model = RetryingModel(PacedModel(inner, limits) if paced else inner, base_delay=0.05)
    done: list[float] = []
    request = ModelRequest(messages=(UserMessage(content="ping"),), max_output_tokens=200)

    async def one() -> None:
        await model.request(request)
        done.append(time.monotonic())

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    await model.aclose()
    elapsed = time.monotonic() - started
    done.sort()
    burst = int(limit - limit / window * limits.headroom)
    steady = done[burst:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return {
        "mode": "paced" if paced else "unpaced",
        "requests": n,
        "limit_per_s": limit / window,
        "server_429s": server.stats()["enforced_429"],
        "wall_s": round(elapsed, 2),
        "steady_per_s": round(rate, 2),
        "steady_vs_limit": round(rate / (limit / window), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--limit", type=int, default=100, help="requests per window")
    parser.add_argument("--window", type=float, default=2.0, help="seconds")
    args = parser.parse_args(argv)
    for paced in (True, False):
        with FaultServer(
            FaultConfig(rpm=args.limit, tpm=args.limit * 1_000, window=args.window)
        ) as server:
            result = anyio.run(_run, server, args.requests, paced, args.limit, args.window)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
