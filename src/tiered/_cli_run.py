"""`tiered run FILE`: run a workflow with live progress and print the run report."""

from __future__ import annotations

import argparse
import inspect
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from tiered._display import LiveDisplay
from tiered._errors import TieredError, UserError
from tiered._journal import Journal
from tiered._learning import RoutingStats
from tiered._orchestrator import Limits, Orchestrator
from tiered._plan import Subtask
from tiered._progress import Progress
from tiered._result import RunResult, RunStatus
from tiered._verify import AgentCheck, Check
from tiered._workflow import Workflow, load_workflow
from tiered.models import LocalModel, RateLimits, models_from_env, pace_ladder, parse_model_map

__all__ = ("RUN_PARSER", "add_run_command", "run_command")

RUN_PARSER: list[argparse.ArgumentParser] = []
"""The `run` subcommand's parser once registered (`tiered resume` reuses it)."""

RESUMED = (
    "file",
    "goal",
    "budget",
    "concurrency",
    "base_url",
    "models",
    "deadline",
    "rpm",
    "tpm",
    "threads",
    "force_escalation",
)
"""The `run` arguments a journal keeps, so `tiered resume` can start the same run again."""


def add_run_command(sub: Any) -> None:
    """Register `run` on an argparse subparsers object."""
    p = sub.add_parser(
        "run",
        help="run a workflow file end to end",
        description="Plan a goal, fan the subtasks out to executors, and print the report. "
        "With OPENAI_API_KEY set it runs on OpenAI; with --base-url on any compatible "
        "server; otherwise on the embedded local models.",
    )
    p.add_argument("file", help="a workflow file, e.g. examples/triage.py")
    p.add_argument("--goal", help="override the workflow's default goal")
    p.add_argument("--budget", help="stop new work past this many dollars (OpenAI prices)")
    p.add_argument("--concurrency", type=int, default=4, help="subtasks in flight (default 4)")
    p.add_argument("--json", action="store_true", help="print the RunResult as JSON")
    p.add_argument("--base-url", help="an OpenAI-compatible server (or TIERED_BASE_URL)")
    p.add_argument(
        "--models", help="tier-to-model map for --base-url: nano=NAME,mini=NAME,flagship=NAME"
    )
    p.add_argument("--threads", type=int, help="CPU threads for the local models")
    p.add_argument(
        "--rpm", type=_positive, help="pace every model to this many requests per minute"
    )
    p.add_argument("--tpm", type=_positive, help="pace every model to this many tokens per minute")
    p.add_argument("--deadline", type=float, help="stop the run after this many seconds")
    p.add_argument(
        "--force-escalation",
        action="store_true",
        help="reject every subtask's first output so the policy escalates it for real",
    )
    p.add_argument(
        "--journal",
        metavar="RUN_DIR",
        help="keep a run journal (SQLite) in this folder: plan, charges, outputs and "
        "side-effecting tool calls; `tiered resume RUN_DIR` continues a crashed run",
    )
    p.add_argument("--quiet", action="store_true", help="no live progress lines")
    p.set_defaults(handler=run_command)
    RUN_PARSER.append(p)


def _positive(text: str) -> int:
    try:
        n = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {n}")
    return n


def _budget(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text.lstrip("$"))
    except InvalidOperation:
        raise UserError(
            f"--budget {text!r} is not a number of dollars, e.g. --budget 0.50"
        ) from None
    if value <= 0:
        raise UserError("--budget must be more than 0")
    return value


def _forced(workflow: Workflow) -> dict[str, Check | AgentCheck]:
    """Checks that reject every subtask's first output; later ones go to the real checks."""
    seen: set[str] = set()

    def reject_first(subtask: Subtask, output: Any) -> str | None:
        if subtask.id not in seen:
            seen.add(subtask.id)
            return "first output rejected by --force-escalation to show a real escalation"
        return None

    checks: dict[str, Check | AgentCheck] = {}
    for agent in workflow.executors:
        real = workflow.verify.get(agent.name)
        if real is None or isinstance(real, AgentCheck):
            checks[agent.name] = reject_first  # an agent check is skipped in the demo
        else:
            checks[agent.name] = _chain(reject_first, real)
    return checks


def _chain(first: Check, then: Check) -> Check:
    async def both(subtask: Subtask, output: Any) -> str | None:
        verdict = first(subtask, output)
        if verdict:
            return verdict  # type: ignore[return-value]
        result = then(subtask, output)
        return await result if inspect.isawaitable(result) else result

    return both


def _live_view() -> LiveDisplay | Progress:
    """The rich live display on a terminal; plain lines, each event once, otherwise."""
    console = Console(stderr=True)
    return LiveDisplay(console) if console.is_terminal else Progress(sys.stderr)


def run_command(args: argparse.Namespace) -> int:
    """Load, run and report; 0 when every subtask succeeded."""
    limits = Limits(concurrency=args.concurrency, deadline=args.deadline)  # bad values: 1 line
    budget = _budget(args.budget)
    workflow = load_workflow(args.file)
    model_map = parse_model_map(args.models) if args.models else None
    ladder = models_from_env(base_url=args.base_url, model_map=model_map, threads=args.threads)
    if args.rpm or args.tpm:
        ladder = pace_ladder(ladder, RateLimits(rpm=args.rpm, tpm=args.tpm))
    print(f"tiered: models: {ladder.source}", file=sys.stderr, flush=True)
    verify = _forced(workflow) if args.force_escalation else dict(workflow.verify)
    stats = None  # with a journal, learn from every attempt; later runs read what was learned
    if args.journal and not args.force_escalation:  # forced rejections are not evidence
        stats = RoutingStats.load(RoutingStats.beside(args.journal), autosave=True)
    orchestrator = Orchestrator(
        workflow.executors,
        planner=workflow.planner,
        models=ladder,
        limits=limits,
        budget=budget,
        verify=verify,
        answer_check=workflow.answer_check,
        stats=stats,
    )
    goal = args.goal or workflow.goal
    print(f"tiered: goal: {goal}", file=sys.stderr, flush=True)
    progress = None if args.quiet else _live_view()

    journal = None
    if args.journal:
        kept = {k: getattr(args, k) for k in RESUMED}
        kept["file"] = str(Path(args.file).resolve())
        kept["goal"] = goal
        journal = Journal(args.journal, meta=kept)

    planner = orchestrator.planner  # its model loads first, alone; every other rung after it
    planner_model = planner.model or ladder[planner.tier_on(ladder)]
    first = planner_model if isinstance(planner_model, LocalModel) else None
    if first is not None:
        first.load_in_background()
    for model in {id(m): m for m in ladder.values()}.values():
        if isinstance(model, LocalModel) and model is not first:
            model.load_in_background(after=first)

    async def main() -> RunResult:
        try:
            return await orchestrator.run(
                goal,
                deps=workflow.deps,
                output_type=workflow.output_type,
                on_event=progress,
                journal=journal,
                model_deltas=isinstance(progress, LiveDisplay),  # tokens as they stream
            )
        finally:
            await ladder.aclose()

    try:
        result = anyio.run(main)
    except TieredError as exc:
        partial = getattr(exc, "result", None)
        if args.json and isinstance(partial, RunResult):
            print(partial.to_json())
        print(f"tiered: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.to_json() if args.json else result.report())
    return 0 if result.status is RunStatus.SUCCEEDED else 1
