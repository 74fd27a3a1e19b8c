"""The scheduler: a ready queue over the plan's DAG, drained by a pool of workers.

A subtask's task exists only while it runs: it is queued when its last dependency
finishes, and taken by one of `min(concurrency, len(plan))` workers. Memory grows
with concurrency, not with the size of the plan.
"""

from __future__ import annotations

from collections import deque

import anyio

from tiered._ledger import task_box
from tiered._plan import Plan, Subtask
from tiered._result import SubtaskResult
from tiered._run_state import RunState
from tiered._subtask import start_subtask

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
    ready: deque[Subtask] = deque(s for s in subtasks if not s.depends_on)
    idle: deque[anyio.Event] = deque()  # one event per waiting worker: wake exactly one
    left = len(subtasks)

    def push(s: Subtask) -> None:
        ready.append(s)
        if idle:
            idle.popleft().set()

    def done(s: Subtask) -> None:
        nonlocal left
        left -= 1
        for nxt in dependents.pop(s.id, ()):
            waiting[nxt.id] -= 1
            if waiting[nxt.id] == 0:
                push(nxt)
        if left == 0:
            while idle:
                idle.popleft().set()  # the plan is done: every waiting worker returns

    async def worker() -> None:
        box = task_box()  # this worker's attempts gather their charges here, one at a time
        while True:
            while not ready:
                if left == 0:
                    return
                woken = anyio.Event()
                idle.append(woken)
                await woken.wait()
            s = ready.popleft()
            try:
                if run.channel is not None:  # backpressure: a stream's consumer is behind
                    await run.channel.wait_for_room()
                await start_subtask(
                    run, s, results, depth=depth, prefix=prefix, run_plan=run_plan, box=box
                )
            finally:
                done(s)

    async with anyio.create_task_group() as tg:
        for _ in range(min(run.config.limits.concurrency, len(subtasks))):
            tg.start_soon(worker)
