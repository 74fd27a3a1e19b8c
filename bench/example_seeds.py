"""The README example on the embedded ladder, once per seed: right answers and wall times.

    python -m bench.example_seeds examples/triage.py --seeds 1-10
    python -m bench.example_seeds examples/triage.py --seeds 1,2 --temperature 0 \\
        --check bench.example_seeds:triage_total --out /tmp/seeds.json
    python -m bench.example_seeds --summarize /tmp/seeds.json   # judge it again

Each seed runs `tiered run FILE --json --quiet` in a child process of its own (a cold
process, as a user's run is) with `TIERED_LOCAL_SEED` and `TIERED_LOCAL_TEMPERATURE`
set; the child also records every local call's llama.cpp timings. `--check` names a
function `(final_answer, run: dict) -> str | None` (None: right) that judges each run;
the default checks the triage example's total refund, exactly 3,499 cents, on a run that
says `succeeded`. A run that is not right is counted as honest when it did not say
`succeeded` (a check caught it) and as wrong when it did. Machine conditions
(cores, load average, busy CPU beside ours) go with the numbers: the cores may be shared.
Run it under `flock /tmp/tiered-heavy.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import busy_cpu_s, loadavg, spread

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_CENTS = 3499
"""The triage example's right total: only A-1001 (3,499 cents) was late."""

Check = Callable[[Any, dict[str, Any]], str | None]


def _numbers(text: str) -> list[int]:
    """Integers written in `text`, thousands separators allowed ("3,499" -> 3499)."""
    return [int(m.replace(",", "")) for m in re.findall(r"\d[\d,]*", text)]


def triage_total(final_answer: Any, run: dict[str, Any]) -> str | None:
    """Right when the run succeeded and its answer's total is exactly 3,499 cents.

    A typed answer (`RefundAnswer`) must have `total_refund_cents == 3499`, refund only
    A-1001, and state no other total in its summary; a text answer must state 3,499
    cents ($34.99) and no other total.
    """
    if run.get("status") != "succeeded":
        return f"status {run.get('status')}: {run.get('error') or ''}".strip()
    if isinstance(final_answer, dict) and "total_refund_cents" in final_answer:
        total = final_answer["total_refund_cents"]
        if total != EXPECTED_CENTS:
            return f"total_refund_cents {total}, not {EXPECTED_CENTS}"
        refunded = sorted(str(o).strip().upper() for o in final_answer.get("refunded_orders", ()))
        if refunded != ["A-1001"]:
            return f"refunded_orders {refunded}, not ['A-1001']"
        return _one_total(str(final_answer.get("summary", "")), allow_missing=True)
    text = final_answer if isinstance(final_answer, str) else json.dumps(final_answer)
    return _one_total(text, allow_missing=False)


def _one_total(text: str, *, allow_missing: bool) -> str | None:
    values = _numbers(text)
    wrong = [v for v in values if v > 1000 and v not in (EXPECTED_CENTS, 1001, 1002, 1003)]
    if wrong:
        return f"also states {wrong}: {text[:160]!r}"
    if allow_missing or EXPECTED_CENTS in values or "34.99" in text:
        return None
    return f"no 3,499 cents in the answer: {text[:160]!r}"


def outcome(run: dict[str, Any], verdict: str | None) -> str:
    """right; honest (not right, and the run did not say `succeeded`); or wrong (it did)."""
    if verdict is None:
        return "right"
    return "wrong" if run.get("status") == "succeeded" else "honest"


def _load_check(spec: str) -> Check:
    module, _, name = spec.partition(":")
    found: Check = getattr(importlib.import_module(module), name)
    return found


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


# --- the child: one run ---------------------------------------------------------------


def _log_to_stderr() -> None:
    """Print the local models' per-call events, repairs and tool errors to stderr (the
    parent's --log file)."""
    import logging

    import structlog

    def only_local(_logger: Any, _method: str, event: Any) -> Any:
        if not str(event.get("event", "")).startswith(
            ("local_model.", "model.response", "output.repair", "tool.error")
        ):
            raise structlog.DropEvent
        return event

    structlog.configure(
        processors=[
            only_local,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _child(file: str, out: Path) -> None:
    from tiered._cli import main
    from tiered.models import LocalModel, models_from_env

    _log_to_stderr()
    started = time.perf_counter()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["run", file, "--json", "--quiet"])
    wall = time.perf_counter() - started
    try:
        run: dict[str, Any] = json.loads(stdout.getvalue())
    except ValueError:
        run = {"status": "no_json", "error": stdout.getvalue()[-500:]}
    timings = []
    for tier, model in models_from_env().items():  # the ladder the CLI used (cached)
        if isinstance(model, LocalModel):
            for t in model.timings:
                timings.append({**dataclasses.asdict(t), "tier": tier.value})
    unique = {(t["model"], t["tier"], t["agent"], t["wall_s"], t["prompt_ms"]): t for t in timings}
    out.write_text(
        json.dumps({"code": code, "wall_s": wall, "run": run, "timings": list(unique.values())})
    )


# --- the parent -----------------------------------------------------------------------


def _run_seed(file: str, seed: int, temperature: float, log: Path | None) -> dict[str, Any]:
    env = {**os.environ, "TIERED_LOCAL_SEED": str(seed)}
    env["TIERED_LOCAL_TEMPERATURE"] = str(temperature)
    env.pop("OPENAI_API_KEY", None)
    env.pop("TIERED_BASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT)]))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        busy0, own0, started = busy_cpu_s(), _children_cpu_s(), time.perf_counter()
        with (log or Path(tmp) / "child.log").open("a") as err:
            err.write(f"--- seed {seed}\n")
            err.flush()
            proc = subprocess.run(
                [sys.executable, "-m", "bench.example_seeds", "--child", file, str(out)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wall = time.perf_counter() - started
        busy1, own = busy_cpu_s(), _children_cpu_s() - own0
        if not out.is_file():
            return {"seed": seed, "wall_s": wall, "error": f"child exited {proc.returncode}"}
        data: dict[str, Any] = json.loads(out.read_text())
    data.update(seed=seed, process_wall_s=wall, load_after=loadavg())
    data["own_cpu_s"] = round(own, 1)
    if busy0 is not None and busy1 is not None:
        data["machine_busy_cores"] = round((busy1 - busy0) / wall, 2)
        data["others_busy_cores"] = round(max(0.0, busy1 - busy0 - own) / wall, 2)
    return data


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summarize(results: list[dict[str, Any]], check: Check) -> dict[str, Any]:
    """Right / honest / wrong runs, wall times and where the time went, over every seed."""
    rows = []
    for r in results:
        run = r.get("run") or {}
        verdict = check(run.get("final_answer"), run) if run else r.get("error", "no run")
        rows.append(
            {
                "seed": r["seed"],
                "right": verdict is None,
                "outcome": outcome(run, verdict),
                "why": verdict,
                "wall_s": round(r.get("process_wall_s", r.get("wall_s", 0.0)), 1),
                "status": run.get("status"),
                "others_busy_cores": r.get("others_busy_cores"),
                "own_cpu_s": r.get("own_cpu_s"),
                "answer": str(run.get("final_answer"))[:200],
            }
        )
    by_tier: dict[str, dict[str, float]] = {}
    for r in results:
        for t in r.get("timings", ()):
            row = by_tier.setdefault(f"{t['tier']} ({t['model']})", dict.fromkeys(_SUMS, 0.0))
            for key in _SUMS:
                row[key] += t.get(key, 0) if key != "calls" else 1
    walls = [row["wall_s"] for row in rows]
    return {
        "right": sum(row["right"] for row in rows),
        "honest": sum(row["outcome"] == "honest" for row in rows),
        "wrong": sum(row["outcome"] == "wrong" for row in rows),
        "runs": len(rows),
        "wall_s": spread(walls),
        "rows": rows,
        "by_tier": by_tier,
    }


_SUMS = ("calls", "prompt_tokens", "cached_tokens", "prompt_ms", "output_tokens", "output_ms")


def _print(summary: dict[str, Any]) -> None:
    print(
        f"right: {summary['right']} of {summary['runs']}; not right but honestly not "
        f"succeeded: {summary['honest']}; wrong and said succeeded: {summary['wrong']}; "
        f"wall s: {summary['wall_s']}"
    )
    for row in summary["rows"]:
        mark = {"right": "ok    ", "honest": "honest", "wrong": "WRONG "}[row["outcome"]]
        print(
            f"  seed {row['seed']:>3} {mark} {row['wall_s']:>6.1f}s "
            f"(others busy {row['others_busy_cores']} cores)  {row['why'] or ''}"
        )
    print("where the time went (all runs):")
    for tier, s in summary["by_tier"].items():
        cached = s["cached_tokens"] / s["prompt_tokens"] if s["prompt_tokens"] else 0.0
        print(
            f"  {tier}: {int(s['calls'])} calls, prompt {int(s['prompt_tokens'])} tok "
            f"({cached:.0%} cached) {s['prompt_ms'] / 1e3:.1f}s, "
            f"output {int(s['output_tokens'])} tok {s['output_ms'] / 1e3:.1f}s"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the workflow once per seed and report right answers and wall times."""
    parser = argparse.ArgumentParser(prog="python -m bench.example_seeds")
    parser.add_argument("file", nargs="?", help="the workflow file, e.g. examples/triage.py")
    parser.add_argument("--seeds", default="1-10", help="e.g. 1-10 or 1,5,9")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    parser.add_argument("--check", default="bench.example_seeds:triage_total")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--log", type=Path, help="append the runs' stderr and call log here")
    parser.add_argument("--summarize", type=Path, help="judge and print an earlier --out file")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return 0
    if args.summarize:
        earlier = json.loads(args.summarize.read_text())
        _print(summarize(earlier["results"], _load_check(args.check)))
        return 0
    if not args.file:
        parser.error("give the workflow file, e.g. examples/triage.py")
    check = _load_check(args.check)
    conditions = {"cores": os.cpu_count(), "load_before": loadavg()}
    results = []
    for seed in _parse_seeds(args.seeds):
        results.append(_run_seed(args.file, seed, args.temperature, args.log))
        print(f"seed {seed}: {results[-1].get('process_wall_s', 0):.1f}s", file=sys.stderr)
        if args.out:  # after every seed, so a bench stopped early keeps what it ran
            args.out.write_text(json.dumps({"results": results, "conditions": conditions}))
    summary = summarize(results, check)
    summary.update(conditions=conditions, temperature=args.temperature, file=args.file)
    _print(summary)
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
