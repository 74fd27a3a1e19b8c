"""Live progress for the command line: one line per notable event, with running totals."""

from __future__ import annotations

import sys
from typing import TextIO

from tiered._events import (
    PlanCreated,
    RunEvent,
    RunFinished,
    SubtaskEscalated,
    SubtaskFailed,
    SubtaskFinished,
    SubtaskRouted,
    SubtaskSkipped,
    SubtaskStarted,
)

__all__ = ("Progress",)


class Progress:
    """Counts subtasks by state from run events and prints a status line for each."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.planned = 0
        self.started: set[str] = set()
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.skipped: set[str] = set()
        self.escalations = 0

    @property
    def running(self) -> int:
        """Subtasks started and not yet ended."""
        return len(self.started - self.done - self.failed)

    def status(self, event: RunEvent) -> str:
        """The counters and totals after `event`."""
        u = event.run_usage
        return (
            f"planned {self.planned} · running {self.running} · done {len(self.done)} · "
            f"escalated {self.escalations} · failed {len(self.failed)} · "
            f"{u.input_tokens + u.output_tokens:,} tokens · "
            f"${event.run_equivalent_cost:.6f} at OpenAI prices"
        )

    def __call__(self, event: RunEvent) -> None:
        """Update from one event and print what happened."""
        what = self._describe(event)
        if what is None:
            return
        print(
            f"[{event.elapsed_s:6.1f}s] {what}  |  {self.status(event)}", file=self.out, flush=True
        )

    def _describe(self, event: RunEvent) -> str | None:
        if isinstance(event, PlanCreated):
            self.planned += event.subtasks
            where = f" for {event.parent}" if event.parent else ""
            steps = ", ".join(f"{s.id}->{s.agent}" for s in event.plan.subtasks)
            return f"plan{where}: {steps}"
        if isinstance(event, SubtaskRouted):
            return f"{event.subtask_id} routed to {event.tier.value} ({event.reason})"
        if isinstance(event, SubtaskStarted):
            self.started.add(event.subtask_id)
            return None
        if isinstance(event, SubtaskFinished):
            self.done.add(event.subtask_id)
            return f"{event.subtask_id} done on {event.tier.value}"
        if isinstance(event, SubtaskEscalated):
            self.escalations += 1
            to = f" to {event.to_tier.value}" if event.to_tier else ""
            return f"{event.subtask_id} {event.action}{to}: {event.reason}"
        if isinstance(event, SubtaskFailed):
            self.failed.add(event.subtask_id)
            return f"{event.subtask_id} FAILED: {event.reason[:120]}"
        if isinstance(event, SubtaskSkipped):
            self.skipped.add(event.subtask_id)
            return f"{event.subtask_id} skipped: {event.reason[:120]}"
        if isinstance(event, RunFinished):
            return f"run {event.status}"
        return "planning" if event.name == "run.started" else None
