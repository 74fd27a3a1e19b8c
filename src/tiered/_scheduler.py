"""The scheduler: a ready queue over the plan's DAG, drained by a pool of workers.

A subtask's task exists only while it runs: it is queued when its last dependency
finishes, and taken by one of `min(concurrency, len(plan))` workers. Memory grows
with concurrency, not with the size of the plan.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import partial

import anyio

from tiered._plan import Plan, Subtask
from tiered._result import SubtaskResult
from tiered._run_state import RunState
from tiered._subtask import drive_subtasks

__all__ = ("run_plan",)


async def run_plan(
    run: RunState,
    plan: Plan,
    results: dict[str, SubtaskResult],
    *,
    depth: int = 0,
    prefix: str = "",
) -> None:
    """Run every subtask of `plan` into `results`; each starts once its dependencies end."""
    subtasks = plan.subtasks
    if not subtasks:
        return
    waiting: dict[str, int] = {}
    dependents: dict[str, list[Subtask]] = {}
    for s in subtasks:
        results[s.id] = SubtaskResult(subtask=s)
        if not s.depends_on:
            waiting[s.id] = 0
            continue
        deps = set(s.depends_on)
        waiting[s.id] = len(deps)
        for d in deps:
            dependents.setdefault(d, []).append(s)
    queue = _Queue(subtasks, dependents, waiting)
    worker = partial(
        drive_subtasks, run, queue, results, depth=depth, prefix=prefix, run_plan=run_plan
    )
    async with anyio.create_task_group() as tg:
        for _ in range(min(run.config.limits.concurrency, len(subtasks))):
            tg.start_soon(worker)


class _Queue:
    """The ready subtasks of one plan level, and the workers waiting for one."""

    __slots__ = ("_dependents", "_idle", "_left", "_ready", "_waiting")

    def __init__(
        self,
        subtasks: Sequence[Subtask],
        dependents: dict[str, list[Subtask]],
        waiting: dict[str, int],
    ) -> None:
        self._ready: deque[Subtask] = deque(s for s in subtasks if not s.depends_on)
        self._idle: deque[anyio.Event] = deque()  # one per waiting worker: wake exactly one
        self._left = len(subtasks)
        self._dependents, self._waiting = dependents, waiting

    def take(self) -> Subtask | None:
        """The next ready subtask, or None."""
        ready = self._ready
        return ready.popleft() if ready else None

    async def wait(self) -> bool:
        """Wait for a subtask to become ready (True), or the plan to end (False)."""
        if self._left == 0:
            return False
        woken = anyio.Event()
        self._idle.append(woken)
        await woken.wait()
        return True

    def done(self, subtask: Subtask) -> None:
        """Queue the dependents `subtask` was the last dependency of."""
        self._left -= 1
        waiting, idle = self._waiting, self._idle
        for nxt in self._dependents.pop(subtask.id, ()):
            waiting[nxt.id] -= 1
            if waiting[nxt.id] == 0:
                self._ready.append(nxt)
                if idle:
                    idle.popleft().set()
        if self._left == 0:
            while idle:
                idle.popleft().set()  # the plan is done: every waiting worker returns
