"""The orchestrator-at-scale and pacing figures: their targets and their tables.

`bench.report` renders the rest; this module reads `results["framework"]` (from
`bench.scheduler`), `results["orchestrated"]` (with its same-run fan-outs) and
`results["pacing"]` (from `bench.pacing`).
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = (
    "framework_section",
    "orchestrated_lines",
    "orchestrated_vs_fanout",
    "pacing_section",
    "targets",
)

LIMITS = {
    "orchestrator_cpu_us": 80.0,
    "kb_per_inflight": 8.0,
    "kb_kept_per_subtask": 2.0,
    "orchestrated_vs_ideal": 1.6,
    "orchestrated_vs_fanout": 1.15,
    "scale_ratio": 1.2,
    "chain_linear": 2.0,
    "pacing_429s": 0.0,
    "pacing_throughput": 0.9,
}


def target_row(
    name: str,
    subject: str,
    measured: float | None,
    limit: float,
    unit: str,
    *,
    lower: bool = True,
    failed: bool = False,
) -> dict[str, Any]:
    """One row of the targets table; `failed` when the measurement itself broke (not met)."""
    met = None if measured is None else (measured <= limit if lower else measured >= limit)
    if failed:
        met = False
    return {
        "target": name,
        "subject": subject,
        "measured": measured,
        "limit": limit,
        "unit": unit,
        "met": met,
        "direction": "≤" if lower else "≥",
    }


def orchestrated_vs_fanout(result: dict[str, Any]) -> dict[str, Any]:
    """Per size and transport: orchestrated and plain fan-out makespan / ideal, paired by
    repetition (each pair ran seconds apart), and the execution phase against the fan-out."""
    out: dict[str, Any] = {}
    for key, size in result.get("sizes", {}).items():
        rows = {}
        for transport, runs in size["runs"].items():
            fans = size.get("fanout_runs", {}).get(transport, [])
            pairs = [
                (o, f)
                for o, f in zip(runs, fans, strict=False)
                if "makespan_s" in o and "makespan_s" in f
            ]
            if not pairs:
                continue
            rows[transport] = {
                "orchestrated": statistics.median(o["ratio"] for o, _ in pairs),
                "fanout": statistics.median(f["ratio"] for _, f in pairs),
                "vs_fanout": statistics.median(o["ratio"] / f["ratio"] for o, f in pairs),
                "execute_vs_fanout": statistics.median(
                    o["phases"]["execute"]["wall_s"] / f["makespan_s"] for o, f in pairs
                ),
                "pairs": len(pairs),
            }
        out[key] = rows
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 8's benchmarks and issue 9's pacing figure."""
    out: list[dict[str, Any]] = []
    fw = results.get("framework", {})
    if "orchestrator_us" in fw:
        n, c = fw["n"], fw["concurrency"]
        out.append(
            target_row(
                "framework alone: CPU per subtask (fastest round)",
                f"Orchestrator.run, {n:,} / {c}",
                fw["orchestrator_us"]["min"],
                LIMITS["orchestrator_cpu_us"],
                "µs",
            )
        )
        out.append(
            target_row(
                "framework alone: memory growing with concurrency, per in-flight subtask",
                f"Orchestrator.run, {n:,} subtasks, (peak@500 − peak@50) / 450",
                fw["kb_per_inflight"],
                LIMITS["kb_per_inflight"],
                "KB",
            )
        )
        out.append(
            target_row(
                "framework alone: memory kept per finished subtask",
                f"Orchestrator.run, {n:,} / {c}",
                fw["kb_kept_per_subtask"],
                LIMITS["kb_kept_per_subtask"],
                "KB",
            )
        )
        scale = fw.get("scale", {})
        big, base = str(fw.get("big", "")), str(fw.get("small", 1000))
        if base in scale and big in scale:
            small, large = scale[base], scale[big]
            for key, what in (
                ("cpu_us", "CPU per subtask"),
                ("kept_kb_per_subtask", "memory kept per subtask"),
                ("peak_kb_per_subtask", "peak memory per subtask"),
            ):
                out.append(
                    target_row(
                        f"{int(big):,} vs {int(base):,} subtasks: {what}",
                        "Orchestrator.run, concurrency 500",
                        large[key] / small[key] if small[key] else None,
                        LIMITS["scale_ratio"],
                        "x",
                    )
                )
        chain = fw.get("chain", {})
        ten, one = chain.get("dependents_first", {}), chain.get("dependents_first_1000", {})
        if "us_per_subtask" in ten and "us_per_subtask" in one:
            linear: float | None = ten["us_per_subtask"] / one["us_per_subtask"]
        else:
            linear = None  # an error (RecursionError, false problems): not met
        out.append(
            target_row(
                "plan check on a 10,000-subtask chain (dependents first): time per subtask vs "
                "1,000 (1 = linear)",
                ten.get("error") or one.get("error") or "check_plan",
                linear,
                LIMITS["chain_linear"],
                "x",
                failed=linear is None,
            )
        )
    orch = orchestrated_vs_fanout(results.get("orchestrated", {}))
    row = orch.get("5000x500", {}).get("aiohttp")
    size = results.get("orchestrated", {}).get("sizes", {}).get("5000x500", {})
    what = "given plan" if size.get("plan_given") else "planner call"
    if row:
        out.append(
            target_row(
                "orchestrated 5000 / 500 over aiohttp: makespan / ideal",
                f"Orchestrator.run: {what}, subtasks, synthesis",
                row["orchestrated"],
                LIMITS["orchestrated_vs_ideal"],
                "x",
            )
        )
        out.append(
            target_row(
                "orchestrated vs plain Agent.run fan-out, same run (ratio of makespan / ideal)",
                "5000 / 500, aiohttp",
                row["vs_fanout"],
                LIMITS["orchestrated_vs_fanout"],
                "x",
            )
        )
    for s in results.get("pacing", {}).get("scenarios", []):
        if not s["paced"]:
            continue
        subject = f"{s['subtasks']} subtasks at concurrency {s['concurrency']}, {s['scenario']}"
        out.append(target_row("pacing: 429s from the server", subject, s["server_429s"], 0.0, ""))
        out.append(
            target_row(
                "pacing: steady throughput / the binding limit's rate",
                subject,
                s["steady_vs_limit"],
                LIMITS["pacing_throughput"],
                "x",
                lower=False,
            )
        )
    return out


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _state(s: dict[str, Any]) -> str:
    return (
        f"{s.get('time')}: nproc {s.get('nproc')}, load average "
        f"{' '.join(str(x) for x in s.get('loadavg', []))}, speed loop {s.get('speed_loop_ms')} ms"
    )


def framework_section(fw: dict[str, Any]) -> list[str]:
    """The framework-alone tables: CPU rounds, memory, scale, plan check."""
    if "orchestrator_us" not in fw:
        return []
    lines = [
        f"### The framework alone ({fw['n']:,} subtasks, concurrency {fw['concurrency']}, "
        f"in-process model answering after {fw['latency_s'] * 1000:.0f} ms)",
        "",
        "No HTTP and no SDK (`bench/scheduler.py`): `Orchestrator.run` on a given plan (no "
        "planner, no synthesis) and plain `Agent.run` in lanes, in interleaved rounds. "
        "Memory is Python allocations (tracemalloc). Python "
        f"{fw.get('python')}; before: {_state(fw.get('before', {}))}; after: "
        f"{_state(fw.get('after', {}))}.",
        "",
        "| round | speed loop ms | Agent.run µs/subtask | Orchestrator.run µs/subtask | ratio |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(fw["cpu_rounds"], 1):
        lines.append(
            f"| {i} | {r['speed_loop_ms']} | {_f(r['agent_us'], 0)} | "
            f"{_f(r['orchestrator_us'], 0)} | {r['ratio']:.2f} |"
        )
    m = fw["memory"]
    lines += [
        "",
        "| memory | concurrency 50 | concurrency 500 | per in-flight subtask |",
        "|---|---|---|---|",
        f"| Orchestrator.run peak | {m['50']['orchestrator_peak'] / 2**20:.1f} MB | "
        f"{m['500']['orchestrator_peak'] / 2**20:.1f} MB | {fw['kb_per_inflight']:.2f} KB |",
        f"| Agent.run lanes peak | {m['50']['agent_peak'] / 2**20:.1f} MB | "
        f"{m['500']['agent_peak'] / 2**20:.1f} MB | {fw['agent_kb_per_inflight']:.2f} KB |",
        f"| kept by the `RunResult` | {m['50']['kept'] / 2**20:.1f} MB | "
        f"{m['500']['kept'] / 2**20:.1f} MB | {fw['kb_kept_per_subtask']:.2f} KB per subtask |",
        "",
        "| plan size | CPU µs/subtask | peak KB/subtask | kept KB/subtask |",
        "|---|---|---|---|",
    ]
    for size, row in fw["scale"].items():
        lines.append(
            f"| {int(size):,} | {_f(row['cpu_us'], 0)} | {row['peak_kb_per_subtask']:.2f} | "
            f"{row['kept_kb_per_subtask']:.2f} |"
        )
    base = str(fw.get("small", 1000))
    runs = fw["scale"].get(base, {}).get("cpu_us_runs")
    if runs:
        lines += [
            "",
            f"The {int(base):,}-subtask CPU is the mean of the runs just before and after the "
            f"{int(fw['big']):,}-subtask one ({', '.join(f'{x:.0f}' for x in runs)} µs).",
        ]
    lines += ["", "| `check_plan`, chain | subtasks | seconds | µs/subtask |", "|---|---|---|---|"]
    for key, c in fw.get("chain", {}).items():
        label = key.replace("_1000", "").replace("_", " ")
        seconds = c.get("error") or f"{c['seconds']:.4f}"
        lines.append(f"| {label} | {c['n']:,} | {seconds} | {_f(c.get('us_per_subtask'), 2)} |")
    lines.append("")
    return lines


def orchestrated_lines(result: dict[str, Any]) -> list[str]:
    """The same-run comparison with the plain `Agent.run` fan-out."""
    rows = orchestrated_vs_fanout(result)
    if not any(rows.values()):
        return []
    lines = [
        "Against the plain `Agent.run` fan-out of the same size and transport, run right after "
        "each repetition (medians over the pairs; execution = the orchestrated run's execution "
        "phase wall time over the fan-out's makespan):",
        "",
        "| size | transport | orchestrated / ideal | fan-out / ideal | ratio | execution / "
        "fan-out |",
        "|---|---|---|---|---|---|",
    ]
    for key, by_transport in rows.items():
        n, c = key.split("x")
        for t, r in by_transport.items():
            lines.append(
                f"| {int(n):,} / {c} | {t} | {r['orchestrated']:.2f} | {r['fanout']:.2f} | "
                f"{r['vs_fanout']:.2f} | {r['execute_vs_fanout']:.2f} |"
            )
    lines.append("")
    return lines


def pacing_section(pacing: dict[str, Any]) -> list[str]:
    """The pacing scenarios: 429s, makespan against the least the limit allows, throughput."""
    scenarios = pacing.get("scenarios", [])
    if not scenarios:
        return []
    s0 = scenarios[0]
    lines = [
        f"### Pacing ({s0['subtasks']} subtasks at concurrency {s0['concurrency']}, "
        f"{s0['server_rpm']} RPM)",
        "",
        "`Orchestrator.run` over `RetryingModel(PacedModel(OpenAIModel))` against "
        "`bench/faults.py`'s `FaultServer` enforcing the RPM and TPM as token buckets "
        f"({s0['latency_s']:.1f} s per answer). The rates are real (600 RPM = 10 requests/s) "
        f"over a shorter window: {s0['per_window']['requests']:.0f} requests per "
        f"{s0['window_s']:g} s, refilled continuously, so the run takes under a minute or two "
        "instead of ten. Throughput is the server-side arrival rate after the pacer's first "
        "burst; ideal makespan is the server's burst, then its refill rate.",
        "",
        "| scenario | TPM | tokens/request | binding | 429s | requests | makespan / ideal "
        "| steady req/s | / limit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        lines.append(
            f"| {s['scenario']} | {s['server_tpm']:,} | {s['tokens_per_request']} | "
            f"{s['binding']} ({s['limit_per_s']:.2f}/s) | {s['server_429s']} | {s['requests']} | "
            f"{_f(s['wall_vs_ideal'], 2)} | {_f(s['steady_per_s'], 2)} | "
            f"{_f(s['steady_vs_limit'], 3)} |"
        )
    lines.append("")
    return lines
