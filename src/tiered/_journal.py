"""The run journal: a SQLite file in a run directory, so a crash loses nothing finished.

One transaction per record, WAL mode, fsynced at commit: the goal and plan, every
model call's charge as the ledger booked it, every attempt, every finished output
(with the identity it was computed for), and every call of a tool that declares side
effects, with its result. Resuming the same run directory restores the ledger (the
report and budget include what was spent before the crash), reuses each finished
output whose identity still matches (agent, instructions, arguments and the outputs
of its dependencies, hashed: a changed plan re-runs what changed), and answers a
side-effecting tool call that already happened from the journal instead of running it
again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from tiered._effects import EffectLog
from tiered._errors import UserError
from tiered._escalation import Attempt
from tiered._ledger import Charge
from tiered._plan import Plan, Subtask
from tiered._runlock import hold, in_use, release

__all__ = ("Journal", "RunSummary", "list_runs", "subtask_identity")

FILE = "journal.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1), run_id TEXT, goal TEXT NOT NULL, plan TEXT,
    status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, meta TEXT
);
CREATE TABLE IF NOT EXISTS charge (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, subtask TEXT, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attempt (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, subtask TEXT NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS output (
    subtask TEXT PRIMARY KEY, identity TEXT NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tool_call (
    key TEXT PRIMARY KEY, subtask TEXT, tool TEXT NOT NULL, arguments TEXT NOT NULL,
    content TEXT NOT NULL, is_error INTEGER NOT NULL, at REAL NOT NULL
);
"""
_CHARGE = TypeAdapter(Charge)
_ATTEMPTS = TypeAdapter(list[Attempt])


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable_python(value, fallback=str), sort_keys=True, default=str)


def subtask_identity(subtask: Subtask, inputs: Mapping[str, Any]) -> str:
    """What a subtask's output depends on, hashed: agent, instructions, arguments, inputs."""
    key = {
        "agent": subtask.agent,
        "instructions": subtask.instructions,
        "arguments": subtask.arguments,
        "inputs": {k: to_jsonable_python(v, fallback=str) for k, v in sorted(inputs.items())},
    }
    return hashlib.sha256(_dumps(key).encode()).hexdigest()


FINAL_ANSWER = "(final answer)"
"""The journal's key for the composed answer (no subtask id can contain a space)."""


def answer_identity(goal: str, outputs: Mapping[str, Any], failures: Mapping[str, str]) -> str:
    """What the final answer depends on, hashed: the goal and what it is composed from."""
    return hashlib.sha256(_dumps([goal, dict(outputs), dict(failures)]).encode()).hexdigest()


class Journal:
    """One run's journal in `run_dir` (created if missing); reopen it to resume."""

    def __init__(
        self, run_dir: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None
    ) -> None:
        self._open = False
        self._meta = dict(meta or {})
        self.dir = Path(run_dir)
        if self.dir.suffix == ".jsonl" or (self.dir.exists() and not self.dir.is_dir()):
            raise UserError(
                f"journal {str(self.dir)!r} must be a run directory (the JSONL file journal "
                "is retired): pass a folder such as runs/today"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if not hold(self.dir):  # two processes on one run would both redo its side effects
            raise UserError(
                f"run directory {str(self.dir)!r} is in use by another process (a run or "
                "resume of it is still going): wait for it to end, or stop it"
            )
        self._open = True
        self.path = self.dir / FILE
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT goal, plan, status FROM run WHERE id = 1").fetchone()
            self.goal: str | None = row[0] if row else None
            self.plan: Plan | None = Plan.model_validate_json(row[1]) if row and row[1] else None
        except (sqlite3.DatabaseError, ValueError) as exc:  # not SQLite, or not our tables
            self.close()
            raise UserError(
                f"{str(self.path)!r} is not a readable run journal ({str(exc)[:200]}): move it "
                "away, or use a new run directory"
            ) from None
        self.status: str | None = row[2] if row else None

    def __repr__(self) -> str:
        return f"Journal({str(self.dir)!r})"

    def close(self) -> None:
        """Close the database (records are already on disk) and free the run directory."""
        if self._open:
            self._open = False
            self._db.close()
            release(self.dir)

    def __del__(self) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._db:  # one transaction, committed (and fsynced) before returning
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(sql, params)

    # --- the run ----------------------------------------------------------------------

    def begin(self, goal: str, run_id: str) -> None:
        """Bind the journal to `goal`; a journal of another goal is refused."""
        if self.goal is not None and self.goal != goal:
            raise UserError(
                f"journal {str(self.dir)!r} belongs to another goal ({self.goal!r}): use a "
                "new run directory, or resume this one without a goal"
            )
        now = time.time()
        if self.goal is None:
            self._write(
                "INSERT INTO run (id, run_id, goal, status, created, updated, meta) "
                "VALUES (1, ?, ?, 'running', ?, ?, ?)",
                (run_id, goal, now, now, _dumps(self._meta)),
            )
        else:
            self._write("UPDATE run SET status = 'running', updated = ? WHERE id = 1", (now,))
        self.goal, self.status = goal, "running"

    def record_plan(self, plan: Plan) -> None:
        """Write the run's plan (once; a resumed run keeps it)."""
        if self.plan == plan:
            return
        self.plan = plan
        self._write(
            "UPDATE run SET plan = ?, updated = ? WHERE id = 1",
            (plan.model_dump_json(), time.time()),
        )

    def record_status(self, status: str) -> None:
        """Write how the run ended (or that it is running again)."""
        self.status = status
        self._write("UPDATE run SET status = ?, updated = ? WHERE id = 1", (status, time.time()))

    def meta(self) -> dict[str, Any]:
        """What the run was started with (e.g. the workflow file), for `tiered resume`."""
        row = self._db.execute("SELECT meta FROM run WHERE id = 1").fetchone()
        return dict(json.loads(row[0])) if row and row[0] else {}

    # --- money --------------------------------------------------------------------------

    def record_charge(self, charge: Charge, subtask: str | None = None) -> None:
        """Write one model call's charge the moment the ledger books it."""
        self._write(
            "INSERT INTO charge (subtask, body) VALUES (?, ?)",
            (subtask, _CHARGE.dump_json(charge).decode()),
        )

    def charges(self) -> list[Charge]:
        """Every charge of every earlier session of this run, in order."""
        rows = self._db.execute("SELECT body FROM charge ORDER BY seq").fetchall()
        return [_CHARGE.validate_json(r[0]) for r in rows]

    def record_attempts(self, subtask: str, attempts: list[Attempt]) -> None:
        """Write a finished subtask's attempts (restored with its output on resume)."""
        self._write(
            "INSERT INTO attempt (subtask, body) VALUES (?, ?)",
            (subtask, _ATTEMPTS.dump_json(attempts).decode()),
        )

    def attempts(self, subtask: str) -> list[Attempt]:
        """The attempts journaled for `subtask`, every session's."""
        rows = self._db.execute(
            "SELECT body FROM attempt WHERE subtask = ? ORDER BY seq", (subtask,)
        ).fetchall()
        return [a for r in rows for a in _ATTEMPTS.validate_json(r[0])]

    # --- outputs ------------------------------------------------------------------------

    def record_output(self, subtask: str, identity: str, output: Any) -> None:
        """Write one finished subtask's output and the identity it was computed for."""
        self._write(
            "INSERT OR REPLACE INTO output (subtask, identity, body) VALUES (?, ?, ?)",
            (subtask, identity, _dumps(output)),
        )

    def restore(self, subtask: str, identity: str, output_type: Any) -> tuple[bool, Any]:
        """(True, typed output) if `subtask` finished earlier for this same identity."""
        row = self._db.execute(
            "SELECT identity, body FROM output WHERE subtask = ?", (subtask,)
        ).fetchone()
        if row is None or row[0] != identity:
            return False, None
        raw = json.loads(row[1])
        if output_type is str:
            return (True, raw) if isinstance(raw, str) else (False, None)
        try:
            return True, TypeAdapter(output_type).validate_python(raw)
        except ValueError:  # the agent's output type changed since: compute it again
            return False, None

    # --- side effects ---------------------------------------------------------------------

    def effects_for(self, subtask: str, identity: str) -> EffectLog:
        """The idempotency keys and store for one subtask's side-effecting tool calls.

        The keys are scoped by the subtask's id as well as its identity: two subtasks
        that ask the same thing are two calls, not one."""
        return EffectLog(_SubtaskEffects(self, subtask), f"{subtask}\x1f{identity}")

    def tool_result(self, key: str) -> tuple[str, bool] | None:
        """(content, is_error) of a side-effecting call that already ran, by its key."""
        row = self._db.execute(
            "SELECT content, is_error FROM tool_call WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def record_tool(
        self,
        key: str,
        subtask: str | None,
        tool: str,
        arguments: str,
        content: str,
        is_error: bool,
    ) -> None:
        """Write a side-effecting call's result before it goes back to the model."""
        self._write(
            "INSERT OR REPLACE INTO tool_call VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, subtask, tool, arguments, content, int(is_error), time.time()),
        )


class _SubtaskEffects:
    """`SideEffectLog` over the journal, for one subtask."""

    __slots__ = ("journal", "subtask")

    def __init__(self, journal: Journal, subtask: str) -> None:
        self.journal, self.subtask = journal, subtask

    def lookup(self, key: str) -> tuple[str, bool] | None:
        return self.journal.tool_result(key)

    def record(self, key: str, tool: str, arguments: str, content: str, is_error: bool) -> None:
        self.journal.record_tool(key, self.subtask, tool, arguments, content, is_error)


class RunSummary:
    """One journaled run, as `tiered runs` lists it."""

    def __init__(
        self, path: Path, goal: str, status: str, updated: float, usd: str, requests: int
    ) -> None:
        self.path, self.goal, self.status = path, goal, status
        self.updated, self.usd, self.requests = updated, usd, requests


def list_runs(root: str | os.PathLike[str]) -> Iterator[RunSummary]:
    """Every run directory under `root` with its status, spend and last change, newest first."""
    found = []
    for file in Path(root).glob(f"*/{FILE}"):
        db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT goal, status, updated FROM run WHERE id = 1").fetchone()
            charges = [_CHARGE.validate_json(b[0]) for b in db.execute("SELECT body FROM charge")]
        except (sqlite3.DatabaseError, ValueError):  # listed, so a broken run is not hidden
            found.append(RunSummary(file.parent, "", "unreadable", file.stat().st_mtime, "?", 0))
            continue
        finally:
            db.close()
        if row is None:
            continue
        spent = sum((c.cost if c.cost > 0 else c.equivalent_cost for c in charges), start=0)
        status = row[1]
        if status == "running" and not in_use(file.parent):  # its process is gone
            status = "interrupted"
        found.append(RunSummary(file.parent, row[0], status, row[2], str(spent), len(charges)))
    yield from sorted(found, key=lambda r: -r.updated)
