"""`Workflow`: a runnable bundle of executors and a default goal, loadable from a file.

An example file defines `workflow = Workflow(...)` (or a function `workflow()` that
returns one); `tiered run FILE` loads it and runs it on the environment's ladder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiered._agent import Agent
from tiered._planner import Planner
from tiered._run_state import AnswerCheck
from tiered._user_file import load_named
from tiered._verify import AgentCheck, Check

__all__ = ("Workflow", "load_workflow")


@dataclass(kw_only=True)
class Workflow:
    """Executors, a default goal and what the run needs, ready for `tiered run`."""

    executors: Sequence[Agent[Any]]
    """The executor agents the planner may use."""
    goal: str
    """The goal run when `--goal` is not given."""
    deps: Any = None
    """Passed to every tool as `ctx.deps`."""
    output_type: Any = str
    """Type of the final answer."""
    verify: Mapping[str, Check | AgentCheck] = field(default_factory=dict)
    """Optional output checks, by executor name."""
    answer_check: AnswerCheck | None = None
    """Checks the composed final answer against the subtask outputs (e.g. `check_numbers`);
    a rejection fails the run as `answer_rejected`."""
    planner: Planner | None = None
    """A custom planner; None uses the default flagship planner."""
    description: str = ""
    """One line for the CLI banner."""


def load_workflow(path: str | Path) -> Workflow:
    """Import a workflow file and return its `workflow` (object or zero-argument function)."""
    return load_named(
        path,
        "workflow",
        Workflow,
        example="examples/triage.py",
        shape="Workflow(executors=[...], goal=...)",
    )
