"""The typed plan: a DAG of subtasks, each naming an executor and carrying its arguments.

`check_plan` finds every problem at once (unknown agent, invalid arguments, unknown
dependency, duplicate id, cycle) and names each precisely, so a planner can repair
them in one turn.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._json import capped

__all__ = ("Plan", "Stakes", "Subtask", "check_plan", "topological_order")


class Stakes(enum.StrEnum):
    """How costly a wrong answer is; high stakes go one tier up."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Subtask(BaseModel):
    """One unit of work for one executor agent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Unique snake_case id naming the step.")
    agent: str = Field(description="Name of the executor agent that does this subtask.")
    instructions: str = Field(description="What this subtask must achieve, in one or two lines.")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="Input for the agent, matching its input schema."
    )
    depends_on: tuple[str, ...] = Field(
        default=(), description="Ids of subtasks whose outputs this one needs."
    )
    tier: Tier | None = Field(default=None, description="Optional tier hint.")
    plan_shaped: bool = Field(
        default=False,
        description="True if the work is choosing a strategy or decomposing an ambiguous goal.",
    )
    stakes: Stakes = Field(default=Stakes.NORMAL, description="How costly a wrong answer is.")
    category: str | None = Field(
        default=None,
        description="Kind of work within the agent (e.g. an eval category): calibration "
        "and learned routing stats are kept per category when set.",
    )


class Plan(BaseModel):
    """A DAG of subtasks plus what the final answer needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subtasks: tuple[Subtask, ...]
    final_answer: str = Field(
        default="", description="What the final answer must contain, built from the outputs."
    )

    def dependents(self) -> dict[str, list[str]]:
        """For each subtask id, the ids that depend on it."""
        out: dict[str, list[str]] = {s.id: [] for s in self.subtasks}
        for s in self.subtasks:
            for d in s.depends_on:
                if d in out:
                    out[d].append(s.id)
        return out


def agent_input(agent: Agent[Any], arguments: Mapping[str, Any]) -> Any:
    """The agent's typed input from a subtask's arguments (`{"input": text}` for str input)."""
    if agent.input_type is str:
        text = arguments.get("input") if len(arguments) == 1 else None
        if isinstance(text, str):
            return text
        raise ValueError('a text agent takes {"input": "<text>"}')
    return agent.validate_input(dict(arguments))


def check_plan(plan: Plan, executors: Mapping[str, Agent[Any]]) -> list[str]:
    """Every problem in `plan` (the first `MAX_PROBLEMS`, then how many more), each naming
    the subtask and what to fix; empty if valid."""
    problems: list[str] = []
    if not plan.subtasks:
        problems.append("the plan has no subtasks: add at least one")
    seen: set[str] = set()
    for s in plan.subtasks:
        if s.id in seen:
            problems.append(f"duplicate subtask id {s.id!r}: give each subtask a unique id")
        seen.add(s.id)
    for s in plan.subtasks:
        agent = executors.get(s.agent)
        if agent is None:
            problems.append(
                f"subtask {s.id!r} names unknown agent {s.agent!r}: use one of "
                f"{', '.join(sorted(executors))}"
            )
        else:
            try:
                agent_input(agent, s.arguments)
            except ValidationError as exc:
                details = "; ".join(
                    capped(
                        [
                            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                            for e in exc.errors()
                        ],
                        limit=5,  # one problem of the plan's: a few, so the count fits too
                    )
                )
                problems.append(
                    f"subtask {s.id!r}: arguments do not fit agent {s.agent!r}'s input: {details}"
                )
            except Exception as exc:  # ValueError, or a validator of the input type that broke
                problems.append(f"subtask {s.id!r}: arguments for agent {s.agent!r}: {exc}")
        for d in s.depends_on:
            if d not in seen:
                problems.append(f"subtask {s.id!r} depends on unknown subtask {d!r}")
            elif d == s.id:
                problems.append(f"subtask {s.id!r} depends on itself")
    cycle = _find_cycle(plan.subtasks)
    if cycle:
        problems.append(
            "dependency cycle: " + " -> ".join(cycle) + ": remove one of these dependencies"
        )
    return capped(problems)


def _find_cycle(subtasks: Sequence[Subtask]) -> list[str] | None:
    """One dependency cycle as a path of ids, found by an iterative depth-first search.

    Iterative so that a chain of any length (even listed dependents-first) costs linear
    time and no recursion.
    """
    if not any(s.depends_on for s in subtasks):  # a flat plan has no cycle: no graph
        return None
    graph: dict[str, list[str]] = {}
    for s in subtasks:
        graph.setdefault(s.id, []).extend(d for d in s.depends_on if d != s.id)
    done: set[str] = set()
    for root, out in graph.items():
        if root in done:
            continue
        if not out:  # no dependencies: on no cycle (the common case, so no search)
            done.add(root)
            continue
        path: list[str] = [root]
        on_path: dict[str, int] = {root: 0}
        edges = [iter(graph[root])]
        while edges:
            nxt = next(edges[-1], None)
            if nxt is None:
                edges.pop()
                node = path.pop()
                del on_path[node]
                done.add(node)
            elif nxt in on_path:
                return [*path[on_path[nxt] :], nxt]
            elif nxt in graph and nxt not in done:
                on_path[nxt] = len(path)
                path.append(nxt)
                edges.append(iter(graph[nxt]))
    return None


def topological_order(plan: Plan) -> list[str]:
    """Subtask ids with every dependency before its dependents (plan must be acyclic)."""
    remaining = {s.id: set(s.depends_on) for s in plan.subtasks}
    order: list[str] = []
    ready = deque(i for i, deps in remaining.items() if not deps)
    dependents = plan.dependents()
    while ready:
        node = ready.popleft()
        order.append(node)
        for nxt in dependents.get(node, ()):
            remaining[nxt].discard(node)
            if not remaining[nxt]:
                ready.append(nxt)
    return order
