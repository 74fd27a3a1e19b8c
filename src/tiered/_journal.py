"""The run journal: an append-only JSONL file so a crash mid-run loses nothing finished.

Each line is one record: the goal and plan once planned, then every subtask output as
it succeeds. Running the same goal again with the same journal reuses the plan and
every finished output, and only runs what is left.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from tiered._errors import UserError
from tiered._plan import Plan

__all__ = ("Journal",)


class Journal:
    """Appends plan and subtask records to `path`, and reads back an earlier run's."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.plan: Plan | None = None
        self.outputs: dict[str, Any] = {}
        """Raw (JSON) outputs of finished subtasks, by full subtask id."""
        self._goal: str | None = None

    def load(self, goal: str) -> None:
        """Read an earlier run of `goal`; a journal of a different goal is refused."""
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # a torn last line from a crash: everything before it stands
                raise UserError(
                    f"journal {str(self.path)!r} line {number} is not JSON: fix or delete it"
                ) from None
            kind = record.get("kind")
            if kind == "plan":
                if record.get("goal") != goal:
                    raise UserError(
                        f"journal {str(self.path)!r} belongs to another goal "
                        f"({record.get('goal')!r}): use a new journal file"
                    )
                self._goal = goal
                self.plan = Plan.model_validate(record["plan"])
            elif kind == "subtask":
                self.outputs[record["id"]] = record["output"]

    def restore(self, subtask_id: str, output_type: Any) -> tuple[bool, Any]:
        """(True, typed output) if `subtask_id` finished in an earlier run."""
        if subtask_id not in self.outputs:
            return False, None
        raw = self.outputs[subtask_id]
        if output_type is str:
            return True, raw
        return True, TypeAdapter(output_type).validate_python(raw)

    def record_plan(self, goal: str, plan: Plan) -> None:
        """Write the run's plan (once per goal)."""
        if self._goal == goal and self.plan == plan:
            return
        self._goal, self.plan = goal, plan
        self._append({"kind": "plan", "goal": goal, "plan": plan.model_dump(mode="json")})

    def record_output(self, subtask_id: str, output: Any) -> None:
        """Write one finished subtask's output."""
        self.outputs[subtask_id] = to_jsonable_python(output, fallback=str)
        self._append({"kind": "subtask", "id": subtask_id, "output": self.outputs[subtask_id]})

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
