"""`python -m bench` (or `make bench`): every workload, one machine, one run, as ratios.

    python -m bench            # full mode (~15 minutes on 2 cores): fills BENCHMARKS.md
    python -m bench --quick    # smoke test, well under a minute; results in $TMPDIR only
    python -m bench --only overhead,fanout      # a subset, merged into the results file
    python -m bench --report   # re-render BENCHMARKS.md from bench/results.json

The simulator runs in its own process; sequential measurements run in one child process
with every contender interleaved; each fan-out run gets a child process of its own so its
CPU time and peak RSS are its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from bench import report
from bench.routing import run_routing
from bench.server import SimServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "tiered-bench-quick.json"
BENCHMARKS = ROOT / "BENCHMARKS.md"

SEQUENTIAL = [
    "floor/aiohttp",
    "floor/httpx2",
    "sdk-post/aiohttp",
    "sdk-post/httpx2",
    "raw-sdk/httpx2",
    "raw-sdk/aiohttp",
    "tiered-model/httpx2",
    "tiered-model/aiohttp",
    "tiered/httpx2",
    "tiered/aiohttp",
    "tiered-split/httpx2",
    "tiered-split/aiohttp",
    "openai-agents",
    "pydantic-ai",
]
FANOUT = [
    "floor/aiohttp",
    "floor/httpx2",
    "raw-sdk/httpx2",
    "raw-sdk/aiohttp",
    "tiered/httpx2",
    "tiered/aiohttp",
    "openai-agents",
    "pydantic-ai",
]
PLANNED_AT_MOST = 2_000
"""Larger orchestrated runs are given their plan: a planner reply of thousands of subtasks is
over the untrusted-JSON limits (`tiered._json.MAX_VALUES`), so it would be refused."""
WORKLOADS = (
    "overhead",
    "tool_loop",
    "fanout",
    "orchestrated",
    "framework",
    "pacing",
    "caching",
    "routing",
)


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "overhead": {"blocks": 3, "per_block": 40, "warmup": 10},
            "tool_loop": {"blocks": 3, "per_block": 10, "warmup": 3},
            "fanout": {
                "latency_ms": 200,
                "sizes": [(300, 100)],
                "reps": 1,
                "contenders": ["raw-sdk/httpx2", "tiered/httpx2", "tiered/aiohttp"],
            },
            "orchestrated": {"sizes": [(200, 100, 1)], "transports": ["aiohttp"]},
            "framework": {"quick": True},
            "pacing": {"quick": True},
            "caching": {"n": 100, "concurrency": 25},
            "routing": {"n": 150, "recalls": [0.9], "mixes": ["bulk"]},
        }
    return {
        "overhead": {"blocks": 25, "per_block": 80, "warmup": 100},
        "tool_loop": {"blocks": 25, "per_block": 20, "warmup": 20},
        "fanout": {
            "latency_ms": 200,
            "sizes": [(1000, 100), (5000, 500)],
            "reps": 3,
            "contenders": FANOUT,
        },
        "orchestrated": {
            "sizes": [(1000, 100, 2), (5000, 500, 3)],
            "transports": ["aiohttp"],  # tiered's default; httpx2's pool is the wall (above)
        },
        "framework": {"quick": False},
        "pacing": {"quick": False},
        "caching": {"n": 1000, "concurrency": 50},
        "routing": {"n": 2000, "recalls": [0.9, 1.0, 0.7], "mixes": ["bulk", "agentic"]},
    }


def _child(kind: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
    """Run `bench.worker` in a child process and return its RESULT line."""
    cmd = [sys.executable, "-m", "bench.worker", kind, json.dumps(kwargs)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"error": f"no result (exit {proc.returncode}): {proc.stderr[-2000:]}"}
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    noise = [line for line in proc.stderr.splitlines() if line.strip()]
    if noise:
        result["stderr_tail"] = noise[-5:]
    return result


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _server_delta(sim: SimServer, before: dict[str, Any]) -> dict[str, Any]:
    after = sim.stats()
    requests = after["requests"] - before["requests"]
    cpu = after["cpu_s"] - before["cpu_s"]
    per_request = cpu / requests * 1e6 if requests else None
    return {"requests": requests, "cpu_s": cpu, "cpu_us_per_request": per_request}


def run_overhead(sim: SimServer, cfg: dict[str, Any], *, tool: bool) -> dict[str, Any]:
    sim.configure(mode="zero", reset=True)
    before = sim.stats()
    result = _child(
        "interleaved",
        timeout=1200,
        base_url=sim.base_url,
        names=SEQUENTIAL,
        blocks=cfg["blocks"],
        per_block=cfg["per_block"],
        warmup=cfg["warmup"],
        tool=tool,
    )
    result["server"] = _server_delta(sim, before)
    result["blocks"] = cfg["blocks"]
    return result


def run_fanout(sim: SimServer, cfg: dict[str, Any]) -> dict[str, Any]:
    latency = cfg["latency_ms"]
    sim.configure(mode="fixed", fixed_ms=latency, reset=True)
    out: dict[str, Any] = {"latency_ms": latency, "reps": cfg["reps"], "sizes": {}}
    for n, concurrency in cfg["sizes"]:
        key = f"{n}x{concurrency}"
        ideal = -(-n // concurrency) * latency / 1000
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cfg["contenders"]}
        for rep in range(cfg["reps"]):
            for name in cfg["contenders"]:
                before = sim.stats()
                _log(f"fan-out {key} rep {rep + 1}: {name}")
                r = _child(
                    "fanout",
                    timeout=300,
                    base_url=sim.base_url,
                    name=name,
                    n=n,
                    concurrency=concurrency,
                )
                r["server"] = _server_delta(sim, before)
                if "makespan_s" in r:
                    r["ratio"] = r["makespan_s"] / ideal
                runs[name].append(r)
        out["sizes"][key] = {"n": n, "concurrency": concurrency, "ideal_s": ideal, "runs": runs}
    return out


def run_orchestrated(sim: SimServer, cfg: dict[str, Any], latency_ms: float) -> dict[str, Any]:
    """`Orchestrator.run` per size and transport, each repetition followed by the plain
    `Agent.run` fan-out of the same size on the same transport: the reference measured in
    the same run, a few seconds apart."""
    sim.configure(mode="fixed", fixed_ms=latency_ms, reset=True)
    out: dict[str, Any] = {"latency_ms": latency_ms, "sizes": {}}
    for n, concurrency, reps in cfg["sizes"]:
        given = n > PLANNED_AT_MOST
        calls = 1 if given else 2  # synthesis (and the planner call when it plans)
        ideal = (calls + -(-n // concurrency)) * latency_ms / 1000
        fan_ideal = -(-n // concurrency) * latency_ms / 1000
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in cfg["transports"]}
        fanouts: dict[str, list[dict[str, Any]]] = {t: [] for t in cfg["transports"]}
        for rep in range(reps):
            for transport in runs:
                _log(f"orchestrated run {n}x{concurrency} rep {rep + 1}: {transport}")
                before = sim.stats()
                r = _child(
                    "orchestrated",
                    timeout=300,
                    base_url=sim.base_url,
                    transport=transport,
                    n=n,
                    concurrency=concurrency,
                    plan_given=given,
                )
                r["server"] = _server_delta(sim, before)
                if "makespan_s" in r:
                    r["ratio"] = r["makespan_s"] / ideal
                runs[transport].append(r)
                _log(f"plain fan-out {n}x{concurrency} rep {rep + 1}: tiered/{transport}")
                before = sim.stats()
                f = _child(
                    "fanout",
                    timeout=300,
                    base_url=sim.base_url,
                    name=f"tiered/{transport}",
                    n=n,
                    concurrency=concurrency,
                )
                f["server"] = _server_delta(sim, before)
                if "makespan_s" in f:
                    f["ratio"] = f["makespan_s"] / fan_ideal
                fanouts[transport].append(f)
        out["sizes"][f"{n}x{concurrency}"] = {
            "n": n,
            "concurrency": concurrency,
            "reps": reps,
            "ideal_s": ideal,
            "plan_given": given,
            "fanout_ideal_s": fan_ideal,
            "runs": runs,
            "fanout_runs": fanouts,
        }
    return out


def run_framework(cfg: dict[str, Any]) -> dict[str, Any]:
    return _child("framework_only", timeout=1500, **cfg)


def run_pacing(cfg: dict[str, Any]) -> dict[str, Any]:
    return _child("pacing", timeout=900, **cfg)


def run_caching(sim: SimServer, cfg: dict[str, Any]) -> dict[str, Any]:
    # real latencies: a prefix is readable once the request that wrote it finished prefill
    sim.configure(mode="model", reset=True)
    r = _child(
        "prompt_caching",
        timeout=600,
        base_url=sim.base_url,
        n=cfg["n"],
        concurrency=cfg["concurrency"],
        transport="aiohttp",
    )
    r.update(n=cfg["n"], concurrency=cfg["concurrency"])
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke testing")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {WORKLOADS}")
    parser.add_argument("--report", action="store_true", help="only re-render BENCHMARKS.md")
    parser.add_argument("--output", type=Path, help="results file (default by mode)")
    args = parser.parse_args(argv)
    path: Path = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    if args.report:
        stored: dict[str, Any] = json.loads(RESULTS.read_text())
        stored["targets"] = report.targets(stored)
        report.write(stored, BENCHMARKS)
        print(report.summary(stored))
        return 0
    only = [w for w in args.only.split(",") if w] or list(WORKLOADS)
    unknown = set(only) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    cfg = _settings(args.quick)
    results: dict[str, Any] = {}
    if args.only and path.exists():
        results = json.loads(path.read_text())
    started = time.time()
    whole = report.Conditions.start()
    meta = report.machine(quick=args.quick, argv=sys.argv)
    if args.only and "meta" in results:
        # a partial rerun: the full run's facts stay; each workload carries its own conditions
        results["meta"].setdefault("reruns", []).append(
            {"workloads": only, "date": meta["date"], "commit": meta["commit"]}
        )
    else:
        results["meta"] = meta
        results["settings"] = cfg

    def save() -> None:
        if not args.only:
            results["meta"]["duration_s"] = round(time.time() - started, 1)
            results["meta"]["loadavg_at_end"] = report.loadavg()
        path.write_text(json.dumps(results, indent=1, default=str) + "\n")

    def record(name: str, run: Callable[[], dict[str, Any]], sim: SimServer | None) -> None:
        server_cpu = (lambda: float(sim.stats()["cpu_s"])) if sim is not None else None
        conditions = report.Conditions.start(server_cpu)
        result = run()
        result["conditions"] = conditions.finish(server_cpu)
        results[name] = result
        save()

    with SimServer() as sim:
        if "overhead" in only:
            _log("overhead: sequential single-turn calls, interleaved blocks")
            record("overhead", lambda: run_overhead(sim, cfg["overhead"], tool=False), sim)
        if "tool_loop" in only:
            _log("tool loop: 2 model calls + 1 tool call, interleaved blocks")
            record("tool_loop", lambda: run_overhead(sim, cfg["tool_loop"], tool=True), sim)
        if "fanout" in only:
            record("fanout", lambda: run_fanout(sim, cfg["fanout"]), sim)
        if "orchestrated" in only:
            latency = cfg["fanout"]["latency_ms"]
            record("orchestrated", lambda: run_orchestrated(sim, cfg["orchestrated"], latency), sim)
        if "framework" in only:
            _log("the framework alone: Agent.run and Orchestrator.run on an in-process model")
            record("framework", lambda: run_framework(cfg["framework"]), sim)
        if "pacing" in only:
            _log("pacing: subtasks through the orchestrator against an RPM/TPM-limited server")
            record("pacing", lambda: run_pacing(cfg["pacing"]), sim)
        if "caching" in only:
            _log("prompt caching: friendly vs hostile layout")
            record("caching", lambda: run_caching(sim, cfg["caching"]), sim)
    if "routing" in only:
        _log("routing economics (in process, simulated outcomes)")
        r = cfg["routing"]
        record(
            "routing",
            lambda: anyio.run(lambda: run_routing(r["n"], recalls=r["recalls"], mixes=r["mixes"])),
            None,
        )
    if not args.only:
        results["meta"].update(whole.finish(None))
    results["targets"] = report.targets(results)
    save()
    if not args.quick and args.output is None:
        report.write(results, BENCHMARKS)
    print(report.summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
