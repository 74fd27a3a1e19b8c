"""The scheduler: a ready queue over the plan's DAG, drained by a pool of workers.

A subtask's task exists only while it runs: it is queued when its last dependency
finishes, and taken by one of `min(concurrency, len(plan))` workers. Memory grows
with concurrency, not with the size of the plan.
"""

from __future__ import annotations

import math

import anyio

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
        deps = set(s.depends_on)
        waiting[s.id] = len(deps)
        for d in deps:
            dependents.setdefault(d, []).append(s)
    send, receive = anyio.create_memory_object_stream[Subtask](math.inf)
    left = len(subtasks)

    def done(s: Subtask) -> None:
        nonlocal left
        left -= 1
        for nxt in dependents.pop(s.id, ()):
            waiting[nxt.id] -= 1
            if waiting[nxt.id] == 0:
                send.send_nowait(nxt)
        if left == 0:
            send.close()

    async def worker() -> None:
        async for s in receive:
            try:
                await run.wait_for_room()
                await start_subtask(run, s, results, depth=depth, prefix=prefix, run_plan=run_plan)
            finally:
                done(s)

    for s in subtasks:
        if not s.depends_on:
            send.send_nowait(s)
    with send, receive:
        async with anyio.create_task_group() as tg:
            for _ in range(min(run.config.limits.concurrency, len(subtasks))):
                tg.start_soon(worker)
