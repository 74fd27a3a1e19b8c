"""The live terminal view of a run, drawn with `rich` from a `RunView`.

Top to bottom: what the run is doing (planning with the planner's tokens so far,
running, composing), a bar of subtasks ended out of planned with the counts by state,
one row per running subtask (agent, tier, elapsed, tokens streamed, the tool it is
in), the latest escalations, rejections and failures in colour, and the spend
against the budget. Library warnings print above the view while it is live.
"""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from tiered._events import RunEvent
from tiered._logging import route_logs
from tiered._progress import Note, RunView

__all__ = ("LiveDisplay",)

_NOTE_STYLE = {
    "escalated": "bold yellow",
    "rejected": "bold red",
    "failed": "bold red",
    "skipped": "magenta",
    "tool_error": "red",
    "warning": "yellow",
    "info": "dim",
}
_TIER_STYLE = {"nano": "green", "mini": "cyan", "flagship": "magenta"}
_PHASE = {
    "starting": "starting",
    "planning": "planning",
    "running": "running subtasks",
    "composing": "composing the final answer",
    "finishing": "finishing",
    "finished": "finished",
}


class LiveDisplay:
    """A `rich.live.Live` view of a run: pass it as `on_event`, use it as a context manager."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        view: RunView | None = None,
        notes_shown: int = 5,
        refresh_per_second: float = 4,
        auto_refresh: bool = True,
    ) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.view = view if view is not None else RunView()
        self.notes_shown = notes_shown
        self._live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=refresh_per_second,
            auto_refresh=auto_refresh,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=True,  # stray prints to stderr go above the view
        )
        self._logs = ExitStack()
        self._state = "new"

    def start(self) -> None:
        """Start drawing and take the library's log lines (done by the first event too)."""
        if self._state == "new":
            self._state = "live"
            self._live.start()
            self._logs.enter_context(route_logs(self.log))

    def stop(self) -> None:
        """Draw the final state and give the terminal back (done by `run.finished` too)."""
        if self._state == "live":
            self._state = "stopped"
            self._logs.close()
            self._live.refresh()
            self._live.stop()

    def __enter__(self) -> LiveDisplay:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __call__(self, event: RunEvent) -> None:
        """Apply one event; the view redraws on its next refresh (at once without auto-refresh)."""
        self.start()
        self.view.update(event)
        if event.name == "run.finished":
            self.stop()
        elif not self._live.auto_refresh and self._state == "live":
            self._live.refresh()

    def log(self, level: str, text: str) -> None:
        """A library log line, printed once above the live view (it stays in the scrollback)."""
        kind = "warning" if level in ("warning", "error", "critical") else "info"
        line = Note(at=self.view.now(), kind=kind, text=f"{level}: {text}")
        self.console.print(self._note(line), highlight=False)

    # --- drawing ----------------------------------------------------------------------

    def render(self) -> RenderableType:
        """The whole view as one renderable (what the live display shows right now)."""
        v = self.view
        with v.lock:
            parts: list[RenderableType] = [self._header(), self._bar()]
            running = self._running()
            if running is not None:
                parts.append(running)
            parts.extend(self._note(n) for n in v.notes[-self.notes_shown :])
            parts.append(self._spend())
        return Group(*parts)

    def _header(self) -> Text:
        v = self.view
        text = Text.assemble((f"{_PHASE.get(v.phase, v.phase)}", "bold"), f"  {v.now():.1f}s")
        if v.phase in ("planning", "composing"):
            text.append(f"  planner: {v.planner_tokens:,} tokens streamed", style="magenta")
        if v.status is not None:
            style = "bold green" if v.status == "succeeded" else "bold red"
            text.append(f"  {v.status}", style=style)
        return text

    def _bar(self) -> Table:
        v = self.view
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=30)
        grid.add_column()
        total = max(v.planned, 1)
        bar = ProgressBar(total=total, completed=v.ended if v.planned else 0, width=30)
        counts = [
            f"{v.ended}/{v.planned} ended",
            f"{v.count('running')} running",
            f"{v.count('queued')} queued",
            f"{v.count('waiting')} waiting",
            f"{v.count('done')} done",
        ]
        extra = Text(" · ".join(counts))
        for state, n, style in (
            ("escalated", v.escalations, "yellow"),
            ("failed", v.count("failed"), "red"),
            ("skipped", v.count("skipped"), "magenta"),
        ):
            if n:
                extra.append(f" · {n} {state}", style=style)
        grid.add_row(bar, extra)
        return grid

    def _running(self) -> Table | None:
        rows = self.view.running()
        if not rows:
            return None
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold dim")
        for name in ("subtask", "agent", "tier", "elapsed", "tokens", "now"):
            table.add_column(name, justify="right" if name in ("elapsed", "tokens") else "left")
        now = self.view.now()
        for r in rows:
            tier = Text(r.tier, style=_TIER_STYLE.get(r.tier, "white"))
            if r.escalated:
                tier.append(f" (attempt {r.attempts})", style="yellow")
            doing = f"calling {r.tool}" if r.tool else "thinking"
            table.add_row(
                r.id,
                r.agent,
                tier,
                f"{now - (r.started_at or now):.1f}s",
                f"{r.tokens:,}" if r.tokens else "-",
                doing,
            )
        return table

    def _note(self, note: Note) -> Text:
        return Text(f"[{note.at:6.1f}s] {note.text}", style=_NOTE_STYLE.get(note.kind, ""))

    def _spend(self) -> Text:
        v = self.view
        text = Text(f"{v.tokens:,} tokens · ${v.spend:.6f} at OpenAI prices", style="dim")
        if v.budget is not None:
            share = float(v.spend / v.budget) if v.budget else 0.0
            style = "bold red" if share >= 0.9 else "yellow" if share >= 0.6 else "green"
            text.append(f" · {share:.0%} of the ${v.budget} budget", style=style)
        return text
