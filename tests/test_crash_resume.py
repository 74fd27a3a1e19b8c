"""Crash tests: a journaled run in a subprocess (tests/crash_driver.py) against the
fault-injecting server is killed with SIGKILL and resumed in a fresh process.

Each test checks the guarantees end to end: a subtask that finished before the kill is
never asked of the server again (the server counts calls per subtask), a side effect
that finished is never repeated (the tool appends a line per real execution), and the
final report's cost is the usage the server reported, priced with tiered's own table,
to the last Decimal digit, however many sessions the run took. The kill lands at a
moment where no answer is on its way back (a `slow` answer the server does not count as
reported, or the run sitting in a tool), so the server's count is the truth to match;
one more kills a burst of four subtasks in flight. Some resume in a fresh process, some
in this one (a new orchestrator over the same directory: faster, the same guarantees).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from bench_support import load_bench
from crash_driver import drive
from tiered import Journal, Usage, UserError, default_catalog
from tiered._journal import list_runs

load_bench()

from bench.faults import FaultServer  # noqa: E402

DRIVER = Path(__file__).with_name("crash_driver.py")
SRC = Path(__file__).resolve().parents[1] / "src"
# s0 -> s1 -> s2 -> s4 <- s3: with one subtask at a time, s2 starts after at least two finished
SUBTASKS: list[list[Any]] = [
    ["s0", []],
    ["s1", ["s0"]],
    ["s2", ["s1"]],
    ["s3", []],
    ["s4", ["s2", "s3"]],
]
IDS = [s[0] for s in SUBTASKS]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        s.configure(slow=60.0)  # a slow answer never arrives before the kill
        yield s


class Run:
    """One run directory and its effects file, driven through driver processes."""

    def __init__(self, tmp: Path, server: FaultServer) -> None:
        self.server = server
        self.dir = tmp / "run"
        self.effects = tmp / "effects.log"
        self.marker = tmp / "in-tool"

    def config(self, **extra: Any) -> str:
        config = {
            "base_url": self.server.base_url,
            "journal": str(self.dir),
            "effects": str(self.effects),
            "subtasks": SUBTASKS,
            "marker": str(self.marker),
        }
        return json.dumps(config | extra)

    def start(self, **extra: Any) -> subprocess.Popen[str]:
        env = os.environ | {
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
        }
        return subprocess.Popen(
            [sys.executable, str(DRIVER), self.config(**extra)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def kill_when(
        self,
        proc: subprocess.Popen[str],
        ready: Callable[[], bool],
        before: Callable[[], None] | None = None,
    ) -> None:
        """SIGKILL `proc` the moment `ready()` holds (it must, within 30 s), after
        `before()` when given (the driver is alive and waiting then)."""
        deadline = time.monotonic() + 30
        while not ready():
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"the driver ended before the kill point:\n{err[-3000:]}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the kill point was never reached")
            time.sleep(0.01)
        if before is not None:
            try:
                before()
            except BaseException:
                proc.kill()
                proc.communicate()
                raise
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL

    def calls(self, subtask: str) -> int:
        return int(self.server.stats()["calls"].get(subtask, 0))

    def resume_here(self, **extra: Any) -> dict[str, Any]:
        """Resume in this process, with a new orchestrator over the same run directory."""
        result = anyio.run(drive, json.loads(self.config(resume=True, **extra)))
        data: dict[str, Any] = json.loads(result.to_json())
        return data

    def resume(self, **extra: Any) -> dict[str, Any]:
        """Resume in a fresh process."""
        proc = self.start(resume=True, **extra)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        result: dict[str, Any] = json.loads(out)
        return result

    def finished(self) -> set[str]:
        """The subtasks whose output the journal holds."""
        return {row[0] for row in self.query("SELECT subtask FROM output")}

    def journaled_effects(self) -> set[str]:
        """The idempotency keys of the side effects the journal holds."""
        return {row[0] for row in self.query("SELECT key FROM tool_call")}

    def query(self, sql: str) -> list[Any]:
        if not (self.dir / "journal.sqlite3").exists():
            return []
        db = sqlite3.connect(self.dir / "journal.sqlite3", timeout=10)
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the driver has not made its tables yet
            return []
        finally:
            db.close()

    def effect_lines(self) -> Counter[tuple[str, str]]:
        """(subtask, idempotency key) -> how many times the tool really ran."""
        lines = self.effects.read_text().splitlines() if self.effects.exists() else []
        return Counter((line.split()[0], line.split()[1]) for line in lines)


def priced(stats: dict[str, Any]) -> tuple[Decimal, Usage]:
    """The server's reported usage, priced per model with tiered's catalog."""
    catalog = default_catalog()
    cost, total = Decimal(0), Usage()
    for model, counts in stats["reported_by_model"].items():
        usage = Usage(
            input_tokens=counts.get("prompt_tokens", 0),
            output_tokens=counts.get("completion_tokens", 0),
            requests=counts.get("requests", 0),
        )
        cost += catalog[model].cost(usage)
        total = total + usage
    return cost, total


def assert_billed_exactly(result: dict[str, Any], server: FaultServer) -> None:
    cost, usage = priced(server.stats())
    assert Decimal(result["cost"]) == cost
    assert result["usage"]["input_tokens"] == usage.input_tokens
    assert result["usage"]["output_tokens"] == usage.output_tokens
    assert result["usage"]["requests"] == usage.requests
    assert result["usage"]["cached_input_tokens"] == 0  # short prompts: priced as uncached


def test_killed_after_two_subtasks_finished_resumes_without_redoing_them(
    tmp_path: Path, server: FaultServer
) -> None:
    server.configure(per_subtask={"s2": ["slow"]})
    run = Run(tmp_path, server)
    run.kill_when(run.start(), lambda: run.calls("s2") >= 1)
    done = run.finished()
    assert {"s0", "s1"} <= done
    assert "s2" not in done
    calls_at_kill = {s: run.calls(s) for s in IDS}

    result = run.resume()

    assert result["status"] == "succeeded"
    assert {s for s in IDS if result["subtasks"][s]["restored"]} == done
    for s in done:  # one tool turn and one answer, all before the kill
        assert run.calls(s) == calls_at_kill[s] == 2, s
    assert run.calls("s2") == 3  # the unanswered call, then a whole run
    assert all(run.calls(s) == 2 for s in set(IDS) - done - {"s2"})
    effects = run.effect_lines()
    assert sorted(s for s, _ in effects) == IDS
    assert set(effects.values()) == {1}  # every side effect happened exactly once
    assert_billed_exactly(result, server)


def test_killed_inside_a_side_effect_runs_it_again_under_the_same_key(
    tmp_path: Path, server: FaultServer
) -> None:
    run = Run(tmp_path, server)

    def while_it_waits_in_the_tool() -> None:
        # one process at a time per run directory: a second resume would redo the effect
        with pytest.raises(UserError, match="in use by another process"):
            Journal(run.dir)
        assert [r.status for r in list_runs(tmp_path)] == ["running"]

    run.kill_when(run.start(block="s2"), run.marker.exists, while_it_waits_in_the_tool)
    assert [r.status for r in list_runs(tmp_path)] == ["interrupted"]  # the kernel let go
    done = run.finished()
    assert {"s0", "s1"} <= done
    in_flight = run.effect_lines()
    assert in_flight[("s2", next(k for s, k in in_flight if s == "s2"))] == 1

    result = run.resume_here()

    assert result["status"] == "succeeded"
    assert {s for s in IDS if result["subtasks"][s]["restored"]} == done
    effects = run.effect_lines()
    # at least once for the call in flight at the kill, with the same idempotency key ...
    s2 = [(key, n) for (s, key), n in effects.items() if s == "s2"]
    assert len(s2) == 1
    assert s2[0][1] == 2
    # ... and exactly once for every call that finished
    assert {s: n for (s, _), n in effects.items() if s != "s2"} == {s: 1 for s in IDS if s != "s2"}
    for s in done:
        assert run.calls(s) == 2, s
    assert run.calls("s2") == 3  # the tool turn before the kill, then a whole run
    assert_billed_exactly(result, server)


def test_killed_twice_the_second_time_while_composing(tmp_path: Path, server: FaultServer) -> None:
    # "" is the composer's call (it serves no subtask); its first answer never comes
    server.configure(per_subtask={"s1": ["slow"], "": ["slow"]})
    run = Run(tmp_path, server)
    run.kill_when(run.start(), lambda: run.calls("s1") >= 1)
    first = run.finished()
    assert "s0" in first
    assert "s1" not in first

    run.kill_when(run.start(resume=True), lambda: run.calls("") >= 1)
    assert run.finished() == set(IDS)  # every subtask done; only the final answer is left

    result = run.resume_here()

    assert result["status"] == "succeeded"
    assert result["final_answer"]
    assert all(result["subtasks"][s]["restored"] for s in IDS)
    assert run.calls("") == 2
    assert run.calls("s1") == 3
    assert all(run.calls(s) == 2 for s in IDS if s != "s1")
    effects = run.effect_lines()
    assert sorted(s for s, _ in effects) == IDS
    assert set(effects.values()) == {1}
    assert_billed_exactly(result, server)


def test_killed_mid_burst_repeats_no_finished_subtask_and_no_journaled_effect(
    tmp_path: Path, server: FaultServer
) -> None:
    # four subtasks at a time, answers overlapping: the kill lands with calls in flight
    server.configure(latency=0.05)
    wide: list[list[Any]] = [[f"w{i}", []] for i in range(12)] + [["join", ["w0", "w5", "w11"]]]
    ids = [s[0] for s in wide]
    run = Run(tmp_path, server)
    run.kill_when(run.start(subtasks=wide, concurrency=4), lambda: len(run.finished()) >= 4)
    done, effects_done = run.finished(), run.journaled_effects()
    calls_at_kill = {s: run.calls(s) for s in ids}
    assert len(done) < len(ids)

    result = run.resume_here(subtasks=wide, concurrency=4)

    assert result["status"] == "succeeded"
    assert {s for s in ids if result["subtasks"][s]["restored"]} == done
    for s in done:  # nothing that finished was asked again
        assert run.calls(s) == calls_at_kill[s] == 2, s
    effects = run.effect_lines()
    assert {s for s, _ in effects} == set(ids)
    for key in effects_done:  # a journaled side effect never ran again
        assert sum(n for (_, k), n in effects.items() if k == key) == 1
    assert all(n == 1 for (s, _), n in effects.items() if s in done)
    # calls in flight at the kill were billed by the server but never booked: at most
    # one per subtask in flight, and every booked one is in the report
    cost, usage = priced(server.stats())
    assert 0 <= usage.requests - result["usage"]["requests"] <= 4
    assert Decimal(result["cost"]) <= cost
