"""`tiered runs` and `tiered resume` over a real journal: the example run through the
OpenAI emulator on loopback, listed with its spend, resumed without asking again for
anything that finished; and every broken run directory is one line on stderr."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from openai_emulator import Emulator, Reply, Seen
from orchestration_support import Echo, ladder, subtask
from test_cli_openai_path import EXAMPLE, USAGE, _answer
from tiered import Orchestrator, Plan, Usage, _cli_runs, default_catalog
from tiered._cli import main

MODELS = "nano=gpt-5.4-nano,mini=gpt-5.4-mini,flagship=gpt-5.4"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(script=_answer)


@pytest.fixture
def server(emulator: Emulator) -> Iterator[str]:
    with emulator.serve() as base_url:
        yield base_url


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *words: str) -> None:
    """Exactly one line, the CLI's own, naming what to fix: no traceback."""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("tiered: error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in err


def test_run_list_and_resume_a_journaled_run(
    tmp_path: Path, server: str, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "runs" / "first"
    args = ["--base-url", server, "--models", MODELS, "--json", "--quiet"]
    code, out, err = cli(capsys, "run", str(EXAMPLE), "--journal", str(run_dir), *args)
    assert code == 0, err
    first = json.loads(out)
    asked_first = len(emulator.requests)

    code, out, err = cli(capsys, "runs", str(tmp_path / "runs"))
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split()[:4] == ["run", "status", "calls", "spent"]
    assert row.split()[:4] == [str(run_dir), "succeeded", str(asked_first), f"${first['cost']}"]
    assert row.endswith(first["goal"][:47] + "...") or row.endswith(first["goal"])

    code, out, err = cli(capsys, "resume", str(run_dir), "--json", "--quiet")
    assert code == 0, err
    again = json.loads(out)
    # nothing that finished is asked again, the final answer included
    assert len(emulator.requests) == asked_first
    assert all(s["restored"] for s in again["subtasks"].values())
    assert again["subtasks"]["check"]["output"] == first["subtasks"]["check"]["output"]
    assert again["final_answer"] == first["final_answer"]
    # the spend of the first session is in the resumed report
    assert again["usage"]["requests"] == asked_first
    assert Decimal(again["cost"]) == Decimal(first["cost"])  # and nothing was paid twice


def test_resume_starts_the_run_again_with_its_pacing_threads_and_forced_escalation(
    tmp_path: Path,
    server: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = tmp_path / "run"
    args = ["--base-url", server, "--models", MODELS, "--json", "--quiet", "--concurrency", "3"]
    paced = ["--rpm", "600", "--tpm", "90000", "--threads", "1", "--force-escalation"]
    cli(capsys, "run", str(EXAMPLE), "--journal", str(run_dir), *args, *paced)
    started: list[argparse.Namespace] = []

    def started_with(args: argparse.Namespace) -> int:
        started.append(args)
        return 0

    monkeypatch.setattr(_cli_runs, "run_command", started_with)
    code, _, err = cli(capsys, "resume", str(run_dir), "--quiet")
    assert code == 0, err
    (again,) = started
    assert (again.rpm, again.tpm, again.threads, again.concurrency) == (600, 90000, 1, 3)
    assert again.force_escalation
    assert again.journal == str(run_dir)


def test_resume_of_a_missing_run_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "resume", str(tmp_path / "nowhere"))
    assert (code, out) == (2, "")
    one_line_error(err, "not a run directory", "journal.sqlite3")


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a database, it only sits where one should" * 20,
        b"SQLite format 3\0" + b"\xff" * 200,
    ],
)
def test_resume_of_a_corrupt_journal_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    (run_dir / "journal.sqlite3").write_bytes(content)
    code, out, err = cli(capsys, "resume", str(run_dir))
    assert (code, out) == (2, "")
    one_line_error(err, "not a readable run journal", "new run directory")


def test_resume_of_a_run_started_in_code_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orch = Orchestrator([Echo()], models=ladder(lambda r: {"text": "x"}))
    orch.run_sync("in code", plan=Plan(subtasks=(subtask("a"),)), journal=tmp_path / "run")
    code, out, err = cli(capsys, "resume", str(tmp_path / "run"))
    assert (code, out) == (2, "")
    one_line_error(err, "not started by `tiered run`", "resume it in code")


def test_runs_of_a_missing_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "runs", str(tmp_path / "nowhere"))
    assert (code, out) == (2, "")
    one_line_error(err, "not a folder")


def test_runs_lists_a_corrupt_run_as_unreadable_next_to_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orch = Orchestrator([Echo()], models=ladder(lambda r: {"text": "x"}))
    orch.run_sync("fine", plan=Plan(subtasks=(subtask("a"),)), journal=tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "journal.sqlite3").write_bytes(b"\x00garbage" * 100)
    code, out, err = cli(capsys, "runs", str(tmp_path))
    assert (code, err) == (0, "")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows[str(tmp_path / "good")][1] == "succeeded"
    assert rows[str(tmp_path / "bad")][1] == "unreadable"


def test_runs_of_an_empty_folder_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "runs", str(tmp_path))
    assert (code, err) == (0, "")
    assert "no journaled runs" in out
    assert "--journal" in out


def subtask_of(seen: Seen) -> str:
    """The subtask a request serves (OpenAIModel labels it), "" for the planner's calls."""
    return seen.headers.get("x-tiered-subtask", "")


def test_a_killed_tiered_run_is_continued_by_tiered_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reached, release = threading.Event(), threading.Event()

    def answer(seen: Seen) -> Reply:
        if subtask_of(seen) == "refund" and not reached.is_set():
            reached.set()  # the refund subtask's first call: hold it, the process dies here
            release.wait(30)
        return _answer(seen)

    emulator = Emulator(script=answer)
    run_dir = tmp_path / "run"
    with emulator.serve() as base_url:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        argv = [sys.executable, "-m", "tiered", "run", str(EXAMPLE), "--base-url", base_url]
        argv += ["--models", MODELS, "--journal", str(run_dir), "--concurrency", "1", "--quiet"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            held = reached.wait(60)
            proc.send_signal(signal.SIGKILL)
            _, stderr = proc.communicate()
        finally:
            release.set()
        assert held, stderr.decode()[-3000:]
        assert proc.returncode == -signal.SIGKILL
        n_before = len(emulator.requests)

        code, out, err = cli(capsys, "resume", str(run_dir), "--json", "--quiet")

    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == "succeeded"
    assert {k for k, v in data["subtasks"].items() if v["restored"]} == {"triage", "check"}
    # finished subtasks are not asked again; the journaled plan is used: the planner's
    # only call is the one composing the final answer
    asked_again = [subtask_of(s) for s in emulator.requests[n_before:]]
    assert "triage" not in asked_again
    assert "check" not in asked_again
    assert asked_again.count("") == 1
    assert "final answer of a run" in emulator.requests[-1].system
    # the held call was never answered, so never booked; every other one is in the report
    answered = emulator.requests[:]
    del answered[next(i for i, s in enumerate(answered) if subtask_of(s) == "refund")]
    catalog, cost = default_catalog(), Decimal(0)
    per_call = Usage(
        input_tokens=USAGE.input, cached_input_tokens=USAGE.cached, output_tokens=USAGE.output
    )
    for s in answered:
        cost += catalog[s.body["model"]].cost(per_call)
    assert data["usage"]["requests"] == len(answered)
    assert Decimal(data["cost"]) == cost
