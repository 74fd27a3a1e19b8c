"""A journaled run in its own process, for the crash tests (tests/test_crash_resume.py).

    python tests/crash_driver.py CONFIG_JSON

CONFIG_JSON names the fault server (`base_url`), the run directory (`journal`), the file
the side-effecting tool appends to (`effects`), `subtasks` as [[id, [deps...]], ...],
and optionally `concurrency` (default 1), `block` (a subtask whose tool call, after its
effect, writes `marker` and waits for the kill), `resume` (continue the journal with
`Orchestrator.resume`). Every subtask asks for the tool once (`#sim:call=record_effect`),
so each finished subtask is two model calls and one effect.
The RunResult JSON goes to stdout; `drive(config)` does the same in the caller's process.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from tiered import Agent, Limits, Orchestrator, Plan, RunContext, RunResult, Subtask, Tier, tool
from tiered.models import OpenAIModel

GOAL = "crash and resume"


class Note(BaseModel):
    note: str


@dataclass
class Deps:
    effects: Path
    block: str | None
    marker: Path | None


@tool(side_effects=True, timeout=None)
async def record_effect(ctx: RunContext[Deps], note: str) -> str:
    """Append one line to the effects file: a side effect the test can count.

    Args:
        note: anything.
    """
    line = f"{ctx.subtask_id} {ctx.idempotency_key}\n"
    fd = os.open(ctx.deps.effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if ctx.subtask_id == ctx.deps.block and ctx.deps.marker is not None:
        ctx.deps.marker.write_text("in the tool")  # the test kills us here
        await anyio.sleep(3600)
    return f"recorded for {ctx.subtask_id}"


class Worker(Agent[str, Deps]):
    """Records one effect per subtask."""

    instructions = "Call record_effect once, then say done."
    input_type = Note
    output_type = str
    tier = Tier.NANO
    tools = (record_effect,)


def plan(subtasks: list[list[Any]]) -> Plan:
    """A plan of Worker subtasks; the `#sim:` word makes the server call the tool."""
    return Plan(
        subtasks=tuple(
            Subtask(
                id=sid,
                agent="Worker",
                instructions=f"record {sid} #sim:call=record_effect \n",
                arguments={"note": sid},
                depends_on=tuple(deps),
            )
            for sid, deps in subtasks
        )
    )


async def drive(config: dict[str, Any]) -> RunResult:
    """Start (or resume) the run `config` describes; the test calls it in process too."""
    names = {Tier.NANO: "gpt-5.4-nano", Tier.MINI: "gpt-5.4-mini", Tier.FLAGSHIP: "gpt-5.4"}
    models = {
        t: OpenAIModel(name, base_url=config["base_url"], api_key="sk-crash", read_timeout=60)
        for t, name in names.items()
    }
    orch = Orchestrator(
        [Worker()],
        models=models,
        limits=Limits(concurrency=int(config.get("concurrency", 1))),
    )
    marker = config.get("marker")
    deps = Deps(Path(config["effects"]), config.get("block"), Path(marker) if marker else None)
    try:
        if config.get("resume"):
            result = await orch.resume(config["journal"], deps=deps)
        else:
            result = await orch.run(
                GOAL, plan=plan(config["subtasks"]), deps=deps, journal=config["journal"]
            )
    finally:
        for m in models.values():
            await m.aclose()
    return result


async def main(config: dict[str, Any]) -> None:
    print((await drive(config)).to_json())


if __name__ == "__main__":
    anyio.run(main, json.loads(sys.argv[1]))
