"""What a run is doing, from its events: `RunView` keeps the state, `Progress` prints lines.

`RunView` is the one place that turns events into counts (planned, waiting, running,
done...), per-subtask rows and notable moments; the live display (`_display.py`)
draws it and `Progress` prints each notable event once, as one plain line, for logs
and pipes. Events are read by name and field, so a field an event does not carry yet
reads as unknown instead of failing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO

from tiered._events import RunEvent
from tiered._logging import route_logs

__all__ = ("Note", "Progress", "Row", "RunView")


def _tier(value: Any) -> str:
    """A tier's name, whether it is an enum member, a str subclass or missing."""
    if value is None:
        return "?"
    return str(getattr(value, "value", value))


def _short(text: Any, limit: int = 100) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _advance(total: int, call: int, now: int) -> tuple[int, int]:
    """(total, this call) after a delta saying this call has produced `now` tokens so far."""
    if now < call:  # a new call: its predecessor's tokens stay in the total
        return total + now, now
    return total + now - call, now


@dataclass(slots=True)
class Row:
    """One subtask as the view knows it."""

    id: str
    agent: str = "?"
    tier: str = "?"
    state: str = "waiting"
    """waiting (for dependencies), queued (routed, waiting for a slot), running, done,
    failed or skipped."""
    started_at: float | None = None
    ended_at: float | None = None
    tokens: int = 0
    """Output tokens streamed so far (model.delta), then the subtask's usage when done."""
    call_tokens: int = 0
    """Output tokens of the model call streaming now (model.delta counts per call)."""
    attempts: int = 1
    tool: str | None = None
    """The tool being called right now, if any."""
    tools_called: int = 0
    escalated: bool = False
    route: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """A moment worth showing: an escalation, a rejection, a failure, a tool error."""

    at: float
    kind: str
    """escalated, rejected, failed, skipped or tool_error (a log line: warning or info)."""
    text: str


@dataclass(slots=True)
class RunView:
    """A run's state after each event; thread-safe to read while events arrive."""

    clock: Callable[[], float] = time.monotonic
    phase: str = "starting"
    """starting, planning, running, composing, finishing, finished."""
    goal: str = ""
    budget: Decimal | None = None
    rows: dict[str, Row] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    planner_tokens: int = 0
    """Tokens the planner has streamed in the current planning or composing phase."""
    tokens: int = 0
    spend: Decimal = Decimal(0)
    escalations: int = 0
    status: str | None = None
    elapsed_s: float = 0.0
    _seen_at: float = 0.0
    _planner_call: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    # --- counts -----------------------------------------------------------------------

    def count(self, state: str) -> int:
        """Subtasks in `state` right now."""
        with self.lock:
            return sum(1 for r in self.rows.values() if r.state == state)

    @property
    def planned(self) -> int:
        """Subtasks in every plan so far (sub-plans included)."""
        return len(self.rows)

    @property
    def ended(self) -> int:
        """Subtasks done, failed or skipped."""
        return sum(self.count(s) for s in ("done", "failed", "skipped"))

    def now(self) -> float:
        """Run seconds now: the last event's time plus the wall time since it arrived."""
        if self.phase == "finished":
            return self.elapsed_s
        return self.elapsed_s + max(0.0, self.clock() - self._seen_at)

    def running(self) -> list[Row]:
        """Rows running now, in the order they started."""
        with self.lock:
            rows = [r for r in self.rows.values() if r.state == "running"]
        return sorted(rows, key=lambda r: r.started_at or 0.0)

    # --- events -----------------------------------------------------------------------

    def update(self, event: RunEvent) -> str | None:
        """Apply `event`; return its one-line description, or None if not worth a line."""
        with self.lock:
            self.elapsed_s = event.elapsed_s
            self._seen_at = self.clock()
            usage = event.run_usage
            self.tokens = usage.input_tokens + usage.output_tokens
            self.spend = event.run_equivalent_cost
            handler = _HANDLERS.get(event.name)
            return handler(self, event) if handler is not None else None

    def _row(self, event: RunEvent) -> Row:
        sid = str(getattr(event, "subtask_id", "?"))
        row = self.rows.get(sid)
        if row is None:
            row = self.rows[sid] = Row(id=sid)
        agent = getattr(event, "agent", None)
        if agent:
            row.agent = str(agent)
        return row

    def _started(self, event: RunEvent) -> str:
        self.phase, self.goal = "planning", str(getattr(event, "goal", ""))
        budget = getattr(event, "budget_usd", None)
        self.budget = Decimal(str(budget)) if budget is not None else None
        self.planner_tokens = 0
        limit = f" (budget ${self.budget})" if self.budget is not None else ""
        return f"planning{limit}: {_short(self.goal, 80)}"

    def _plan(self, event: RunEvent) -> str:
        plan = getattr(event, "plan", None)
        parent = getattr(event, "parent", None)
        prefix = f"{parent}/" if parent else ""
        steps = []
        for s in getattr(plan, "subtasks", ()):
            sid = prefix + s.id
            self.rows.setdefault(sid, Row(id=sid, agent=s.agent))
            after = f" after {', '.join(s.depends_on)}" if s.depends_on else ""
            steps.append(f"{sid} {s.agent}{after}")
        self.phase, self.planner_tokens, self._planner_call = "running", 0, 0
        where = f" for {parent}" if parent else ""
        return f"plan{where}, {len(steps)} subtasks: " + "; ".join(steps)

    def _routed(self, event: RunEvent) -> None:
        row = self._row(event)
        row.tier, row.route = _tier(getattr(event, "tier", None)), str(getattr(event, "reason", ""))
        if row.state == "waiting":
            row.state = "queued"

    def _subtask_started(self, event: RunEvent) -> str:
        row = self._row(event)
        tier = getattr(event, "tier", None)
        if tier is not None:
            row.tier = _tier(tier)
        row.state, row.started_at, row.tokens, row.call_tokens = "running", event.elapsed_s, 0, 0
        route = f" ({_short(row.route, 60)})" if row.route else ""
        return f"{row.id} {row.agent} started on {row.tier}{route}"

    def _escalated(self, event: RunEvent) -> str:
        row = self._row(event)
        self.escalations += 1
        row.escalated, row.attempts, row.tool = True, row.attempts + 1, None
        action = str(getattr(event, "action", "escalate"))
        to = getattr(event, "to_tier", None)
        src = _tier(getattr(event, "from_tier", row.tier))
        if to is not None:
            row.tier = _tier(to)
        failure = getattr(event, "failure", None)
        kind = failure if isinstance(failure, str) else _tier(getattr(failure, "kind", None))
        reason = str(getattr(event, "reason", ""))
        message = getattr(event, "message", None) or getattr(failure, "message", None)
        if message and str(message) not in reason:
            reason = f"{reason} ({message})"
        rejected = kind == "verifier_rejected" or "verifier_rejected" in reason
        dest = f" {src} -> {row.tier}" if to is not None else ""
        text = f"{row.id} {action}{dest}: {_short(reason, 140)}"
        self.notes.append(Note(event.elapsed_s, "rejected" if rejected else "escalated", text))
        return ("REJECTED, " if rejected else "") + text

    def _finished(self, event: RunEvent) -> str:
        row = self._row(event)
        row.state, row.ended_at, row.tool = "done", event.elapsed_s, None
        row.tier = _tier(getattr(event, "tier", row.tier))
        row.attempts = int(getattr(event, "attempts", row.attempts))
        usage = getattr(event, "usage", None)
        if usage is not None:
            row.tokens = usage.input_tokens + usage.output_tokens
        took = event.elapsed_s - (row.started_at if row.started_at is not None else 0.0)
        tries = f", {row.attempts} attempts" if row.attempts > 1 else ""
        return (
            f"{row.id} {row.agent} done on {row.tier} in {took:.1f}s, {row.tokens:,} tokens{tries}"
        )

    def _ended(self, event: RunEvent, state: str) -> str:
        row = self._row(event)
        row.state, row.ended_at, row.tool = state, event.elapsed_s, None
        text = f"{row.id} {state.upper()}: {_short(getattr(event, 'reason', ''), 160)}"
        self.notes.append(Note(event.elapsed_s, state, text))
        return text

    def _tool_called(self, event: RunEvent) -> str:
        row = self._row(event)
        row.tool, row.tools_called = str(getattr(event, "tool", "?")), row.tools_called + 1
        args = getattr(event, "arguments", None)
        shown = _short(args, 60) if args not in (None, "", {}) else ""
        return f"{row.id} {row.agent} calls {row.tool}({shown})"

    def _tool_returned(self, event: RunEvent) -> str | None:
        row = self._row(event)
        row.tool = None
        if not getattr(event, "is_error", False):
            return None
        text = f"{row.id} tool {getattr(event, 'tool', '?')} failed"
        self.notes.append(Note(event.elapsed_s, "tool_error", text))
        return text

    def _delta(self, event: RunEvent) -> None:
        # `output_tokens` counts the call so far; a smaller count means a new call began
        n = int(getattr(event, "output_tokens", 0) or 0)
        sid = getattr(event, "subtask_id", None)
        if sid is None:
            self.planner_tokens, self._planner_call = _advance(
                self.planner_tokens, self._planner_call, n
            )
            return
        row = self._row(event)
        row.tokens, row.call_tokens = _advance(row.tokens, row.call_tokens, n)
        tier = getattr(event, "tier", None)
        if tier is not None:
            row.tier = _tier(tier)

    def _compose(self, event: RunEvent) -> str:
        self.phase, self.planner_tokens, self._planner_call = "composing", 0, 0
        return "composing the final answer (planner)"

    def _composed(self, event: RunEvent) -> str:
        self.phase = "finishing"
        error = getattr(event, "error", None)
        if error:
            self.notes.append(Note(event.elapsed_s, "failed", f"composing failed: {error}"))
            return f"composing the final answer FAILED: {_short(error, 200)}"
        return "final answer composed"

    def _run_finished(self, event: RunEvent) -> str:
        self.phase, self.status = "finished", str(getattr(event, "status", "?"))
        done, total = self.count("done"), self.planned
        failed, skipped = self.count("failed"), self.count("skipped")
        parts = [f"{done}/{total} subtasks done"]
        parts += [f"{failed} failed"] if failed else []
        parts += [f"{skipped} skipped"] if skipped else []
        if self.escalations:
            parts.append(f"{self.escalations} escalation{'s' if self.escalations > 1 else ''}")
        parts.append(f"{self.tokens:,} tokens")
        parts.append(f"${self.spend:.6f} at OpenAI prices")
        counterfactual = getattr(event, "counterfactual_cost", None)
        if counterfactual:
            parts.append(f"${counterfactual:.6f} all-flagship")
        line = f"run {self.status} in {event.elapsed_s:.1f}s: " + ", ".join(parts)
        error = getattr(getattr(event, "result", None), "error", None)
        if error and self.status != "succeeded":
            self.notes.append(Note(event.elapsed_s, "failed", f"run {self.status}: {error}"))
            line += f"\n  why: {_short(error, 400)}"
        return line


_HANDLERS: dict[str, Callable[[RunView, RunEvent], str | None]] = {
    "run.started": RunView._started,
    "plan.created": RunView._plan,
    "subtask.routed": RunView._routed,
    "subtask.started": RunView._subtask_started,
    "subtask.escalated": RunView._escalated,
    "subtask.finished": RunView._finished,
    "subtask.failed": lambda v, e: v._ended(e, "failed"),
    "subtask.skipped": lambda v, e: v._ended(e, "skipped"),
    "tool.called": RunView._tool_called,
    "tool.returned": RunView._tool_returned,
    "model.delta": RunView._delta,
    "compose.started": RunView._compose,
    "compose.finished": RunView._composed,
    "run.finished": RunView._run_finished,
}


class Progress:
    """Plain progress for logs and pipes: each notable event once, one short line."""

    def __init__(self, out: TextIO | None = None, *, view: RunView | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.view = view if view is not None else RunView()
        self._logs = ExitStack()

    def line(self, text: str, at: float | None = None) -> None:
        """Print one line stamped with the run time (log lines routed here use it too)."""
        when = self.view.now() if at is None else at
        print(f"[{when:6.1f}s] {text}", file=self.out, flush=True)

    def log(self, level: str, text: str) -> None:
        """A library log line, in the same shape as the progress lines."""
        self.line(f"{level}: {text}")

    def __call__(self, event: RunEvent) -> None:
        """Update from one event and print it if it is worth a line.

        From `run.started` to `run.finished` the library's warnings print here too, in
        the same shape, instead of in a second format between the lines.
        """
        if event.name == "run.started":
            self._logs.enter_context(route_logs(self.log))
        what = self.view.update(event)
        if what is not None:
            self.line(what, event.elapsed_s)
        if event.name == "run.finished":
            self._logs.close()
