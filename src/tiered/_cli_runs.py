"""`tiered runs [ROOT]` lists journaled runs; `tiered resume RUN_DIR` continues one."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tiered._cli_run import RESUMED, RUN_PARSER, run_command
from tiered._errors import UserError
from tiered._journal import Journal, list_runs

__all__ = ("add_resume_command", "add_runs_command")


def add_runs_command(sub: Any) -> None:
    """Register `runs`."""
    p = sub.add_parser(
        "runs",
        help="list journaled runs: status, spend, age",
        description="Every run directory under ROOT (made with `tiered run --journal`).",
    )
    p.add_argument("root", nargs="?", default=".", help="folder holding run directories")
    p.set_defaults(handler=_runs)


def add_resume_command(sub: Any) -> None:
    """Register `resume`."""
    p = sub.add_parser(
        "resume",
        help="continue a journaled run where it stopped",
        description="Reuse every finished output and side effect of RUN_DIR, restore its "
        "spend, and run only what is left.",
    )
    p.add_argument("run_dir", help="a run directory made with `tiered run --journal`")
    p.add_argument("--json", action="store_true", help="print the RunResult as JSON")
    p.add_argument("--quiet", action="store_true", help="no live progress lines")
    p.set_defaults(handler=_resume)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _runs(args: argparse.Namespace) -> int:
    if not Path(args.root).is_dir():
        raise UserError(f"{args.root!r} is not a folder: name the one holding run directories")
    rows = list(list_runs(args.root))
    if not rows:
        print(f"no journaled runs under {args.root!r} (start one: tiered run FILE --journal DIR)")
        return 0
    now = time.time()
    width = max(len(str(r.path)) for r in rows)
    print(f"{'run':<{width}}  {'status':<16}  {'calls':>5}  {'spent':>12}  age   goal")
    for r in rows:
        goal = r.goal if len(r.goal) <= 50 else r.goal[:47] + "..."
        print(
            f"{r.path!s:<{width}}  {r.status:<16}  {r.requests:>5}  {'$' + r.usd:>12}  "
            f"{_age(now - r.updated):<5} {goal}"
        )
    return 0


def _resume(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / "journal.sqlite3").is_file():
        raise UserError(f"{str(run_dir)!r} is not a run directory (no journal.sqlite3 in it)")
    journal = Journal(run_dir)
    meta, goal = journal.meta(), journal.goal
    journal.close()
    if goal is None:
        raise UserError(f"{str(run_dir)!r} holds no run to resume (its journal is empty)")
    if not meta.get("file"):
        raise UserError(f"{str(run_dir)!r} was not started by `tiered run`: resume it in code")
    argv = [str(meta["file"]), "--journal", str(run_dir), "--goal", str(meta["goal"])]
    for key in RESUMED:
        value = meta.get(key)
        if key in ("file", "goal") or value is None or value is False:
            continue
        flag = f"--{key.replace('_', '-')}"
        argv += [flag] if value is True else [flag, str(value)]
    argv += ["--json"] if args.json else []
    argv += ["--quiet"] if args.quiet else []
    return run_command(RUN_PARSER[0].parse_args(argv))
