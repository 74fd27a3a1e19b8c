"""`tiered eval FILE` (measure each tier on a holdout) and `tiered routing [PATH]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from tiered._calibrated import CalibratedRouter
from tiered._calibration import CALIBRATION_FILE
from tiered._catalog import Tier
from tiered._errors import UserError
from tiered._eval import Evaluation, evaluate
from tiered._eval_report import CaseOutcome, EvalReport
from tiered._learning import STATS_FILE, RoutingStats
from tiered._orchestrator import Limits
from tiered._user_file import load_named
from tiered.models import Model, models_from_env, parse_model_map

__all__ = ("add_eval_command", "add_routing_command", "load_evaluation")


def load_evaluation(path: str | Path) -> Evaluation:
    """Import an evaluation file and return its `evaluation` (object or function)."""
    return load_named(
        path,
        "evaluation",
        Evaluation,
        example="evals/triage.py",
        shape="Evaluation(agent=..., cases=...)",
    )


def add_eval_command(sub: Any) -> None:
    """Register `eval` on an argparse subparsers object."""
    p = sub.add_parser(
        "eval",
        help="run a holdout of cases on each tier and write a calibration",
        description="Run every case of an evaluation file on each tier of the ladder, report "
        "success (95%% interval), cost, latency and failure kinds per tier, and write the "
        "calibration the CalibratedRouter reads.",
    )
    p.add_argument("file", help="a Python file defining `evaluation = Evaluation(...)`")
    p.add_argument("--tiers", help="comma-separated tiers to run, e.g. nano,mini (default all)")
    p.add_argument("--concurrency", type=int, default=4, help="runs in flight (default 4)")
    p.add_argument("--timeout", type=float, help="seconds one case may take")
    p.add_argument(
        "--deadline",
        type=float,
        help="seconds the whole evaluation may take (then it reports the cases that finished)",
    )
    p.add_argument(
        "--calibration",
        default=CALIBRATION_FILE,
        help=f"calibration file to write (default ./{CALIBRATION_FILE}); 'none' to skip",
    )
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument(
        "--outcomes",
        help="append every case's outcome to this JSONL file as it finishes (an interrupted "
        "evaluation keeps what it measured)",
    )
    p.add_argument("--base-url", help="an OpenAI-compatible server (or TIERED_BASE_URL)")
    p.add_argument("--models", help="tier-to-model map: nano=NAME,mini=NAME,flagship=NAME")
    p.add_argument("--threads", type=int, help="CPU threads for the local models")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=eval_command)


def _progress(outcome: CaseOutcome, done: int, total: int, quiet: bool, log: str | None) -> None:
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(outcome.to_dict()) + "\n")
    if quiet:
        return
    verdict = "ok" if outcome.succeeded else f"FAIL {outcome.failure}"
    print(
        f"[{done}/{total}] {outcome.tier.value:<8} {outcome.case_id:<24} {verdict} "
        f"{outcome.latency_s:.2f}s {outcome.input_tokens + outcome.output_tokens} tokens",
        file=sys.stderr,
        flush=True,
    )


def eval_command(args: argparse.Namespace) -> int:
    """Load, evaluate, write the calibration and print the table (or JSON)."""
    evaluation = load_evaluation(args.file)
    model_map = parse_model_map(args.models) if args.models else None
    ladder: Any = evaluation.models
    if ladder is None:
        ladder = models_from_env(base_url=args.base_url, model_map=model_map, threads=args.threads)
        print(f"tiered: models: {ladder.source}", file=sys.stderr, flush=True)
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()] if args.tiers else None
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    limits = Limits(
        concurrency=args.concurrency, subtask_timeout=args.timeout, deadline=args.deadline
    )

    async def main() -> EvalReport:
        try:
            return await evaluate(
                evaluation,
                models=ladder,
                tiers=tiers,
                limits=limits,
                progress=lambda o, done, total: _progress(
                    o, done, total, args.quiet, args.outcomes
                ),
            )
        finally:
            close = getattr(ladder, "aclose", None)
            if close is not None:
                await close()

    report = anyio.run(main)
    if args.calibration.lower() != "none":
        report.calibration().save(args.calibration)
        print(f"tiered: calibration written to {args.calibration}", file=sys.stderr)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.table())
    if not args.json:
        print(_routes(report, {t: ladder[t] for t in report.tiers}))
    return 0


def _routes(report: EvalReport, models: Mapping[Tier, Model]) -> str:
    """Where `CalibratedRouter(calibration)` would start this agent's subtasks, and why:
    overall and per category (what the table means for routing, in its own words)."""
    router = CalibratedRouter(report.calibration())
    lines = ["", "Where CalibratedRouter starts this agent, from this calibration:"]
    for category in [None, *report.categories]:
        views = router.measured(report.agent, models, category)
        scope = category or "all"
        if len(views) < 2:
            lines.append(f"  {scope}: fewer than {router.min_cases} cases on two tiers")
            continue
        decision = router.choose(views, category)
        gate = f" gated < {decision.gate:.2f}" if decision.gate is not None else ""
        lines.append(f"  {scope}: {decision.tier.value}{gate} ({decision.reason})")
    return "\n".join(lines)


def add_routing_command(sub: Any) -> None:
    """Register `routing` on an argparse subparsers object."""
    p = sub.add_parser(
        "routing",
        help="show the learned per-agent, per-tier success table",
        description="Show the routing stats learned from finished attempts.",
    )
    p.add_argument(
        "path",
        nargs="?",
        default=STATS_FILE,
        help=f"stats file, or a run journal folder (default ./{STATS_FILE})",
    )
    p.add_argument("--json", action="store_true", help="print the stats file's JSON")
    p.set_defaults(handler=routing_command)


def routing_command(args: argparse.Namespace) -> int:
    """Print the table of learned estimates."""
    path = Path(args.path)
    if path.is_dir():  # a run journal: its stats sit beside it (or in it, for `--journal .`)
        path = path / STATS_FILE if (path / STATS_FILE).exists() else RoutingStats.beside(path)
    if not path.exists():
        raise UserError(f"no routing stats at {str(path)!r}: runs write them beside the journal")
    stats = RoutingStats.load(path)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=1))
        return 0
    head = ("agent", "tier", "category", "success", "95% CI", "observations", "weight", "$/try")
    rows = [head]
    for agent, tier, category, e in stats.rows():
        cost = stats.mean_cost(agent, Tier(tier), category or None)
        rows.append(
            (
                agent,
                tier,
                category or "-",
                f"{100 * e.mean:.0f}%",
                f"{100 * e.low:.0f}-{100 * e.high:.0f}%",
                str(e.n),
                f"{e.weight:.1f}",
                "-" if cost is None else f"${cost:.6f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"half-life {stats.half_life:g} observations")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
