"""The `tiered` command: `models`, `cost`, exit codes, and the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tiered import __version__
from tiered._cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- tiered models ----------------------------------------------------------------------


def test_models_lists_every_model_and_price(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "models")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    for column in ("tier", "input", "cached input", "output", "context", "max output"):
        assert column in header
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("gpt-")}
    assert rows["gpt-5.4-nano"] == [
        "gpt-5.4-nano",
        "nano",
        "$0.20",
        "$0.02",
        "$1.25",
        "400K",
        "128K",
    ]
    assert rows["gpt-5.4-mini"] == [
        "gpt-5.4-mini", "mini", "$0.75", "$0.075", "$4.50", "400K", "128K"
    ]  # fmt: skip
    assert rows["gpt-5.4"] == [
        "gpt-5.4", "flagship", "$2.50", "$0.25", "$15.00", "1.05M", "128K",
        ">272K:", "$5.00/$0.50/$22.50",
    ]  # fmt: skip


def test_models_table_is_aligned_cheapest_first(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "models")
    header, *rows = [line for line in out.splitlines() if line.startswith(("model", "gpt-"))]
    assert [row.split()[0] for row in rows] == ["gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4"]
    for column in ("tier", "input", "cached input", "output", "context", "max output"):
        at = header.index(" " + column) + 1
        for row in rows:
            assert row[at - 1] == " " != row[at], f"column {column!r} is not aligned:\n{out}"


# --- tiered cost ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "figure"),
    [
        (("gpt-5.4-mini", "--input", "1000", "--output", "500"), "$0.003"),
        (("gpt-5.4-nano", "--input", "1000", "--output", "500"), "$0.000825"),
        (("gpt-5.4-nano", "--input", "200", "--output", "30"), "$0.0000775"),
        (("gpt-5.4-mini", "--input", "1000", "--output", "500", "--cached", "400"), "$0.00273"),
        (("gpt-5.4-mini", "--input", "1000", "--output", "500", "--batch"), "$0.0015"),
        (("gpt-5.4-mini", "--input", "1000", "--output", "500", "--regional"), "$0.0033"),
        (
            ("gpt-5.4-nano", "--input", "1000", "--output", "500", "--batch", "--regional"),
            "$0.00045375",
        ),
        (("gpt-5.4", "--input", "1000000", "--output", "100000"), "$7.25"),
        (("gpt-5.4", "--input", "1000000"), "$5.00"),
        (("gpt-5.4-nano",), "$0.00"),
        (("gpt-5.4-nano", "--input", "1,000", "--output", "500"), "$0.000825"),
    ],
)
def test_cost_exact_figures(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], figure: str
) -> None:
    code, out, err = run(capsys, "cost", *argv)
    assert (code, err) == (0, "")
    first, breakdown = out.splitlines()
    assert first == figure
    assert "e" not in first.lower()  # never scientific notation
    assert breakdown.startswith(f"{argv[0]} (")


def test_cost_breakdown_line(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "cost", "gpt-5.4-mini", "--input", "1000", "--output", "500")
    assert out.splitlines()[1] == (
        "gpt-5.4-mini (mini): 1,000 input @ $0.75 + 500 output @ $4.50 per 1M"
    )
    _, out, _ = run(
        capsys,
        "cost",
        "gpt-5.4",
        "--input", "300000", "--cached", "100000", "--output", "1000",
        "--batch", "--regional",
    )  # fmt: skip
    assert out.splitlines() == [
        "$0.589875",
        "gpt-5.4 (flagship): 200,000 input @ $5.00 + 100,000 cached @ $0.50 + 1,000 output "
        "@ $22.50 per 1M, long-context rate (input over 272K), x0.5 batch, x1.1 regional",
    ]


def test_cost_unknown_model_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cost", "gpt-9", "--input", "1")
    assert code == 2
    assert out == ""
    assert err.startswith("tiered: error: unknown model 'gpt-9'")
    assert "gpt-5.4-mini" in err


def test_cost_cached_over_input_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cost", "gpt-5.4", "--input", "10", "--cached", "11")
    assert (code, out) == (2, "")
    assert "--cached (11) cannot exceed --input (10)" in err


@pytest.mark.parametrize("bad", ["-1", "ten", "1.5"])
def test_cost_bad_token_count_exit_2(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    code, out, err = run(capsys, "cost", "gpt-5.4", "--input", bad)
    assert (code, out) == (2, "")
    assert "argument --input" in err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "usage: tiered" in err


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert "invalid choice" in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("run", "models", "cost"):
        assert command in out
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"tiered {__version__}\n")


# --- the installed entry points ---------------------------------------------------------


def _console_script() -> str:
    bin_dir = sysconfig.get_path("scripts")
    found = shutil.which("tiered", path=bin_dir) or shutil.which(
        "tiered", path=str(Path(sys.executable).parent)
    )
    assert found, f"no `tiered` console script in {bin_dir}: run `pip install -e .`"
    return found


def test_console_script() -> None:
    proc = subprocess.run(
        [_console_script(), "cost", "gpt-5.4-nano", "--input", "200", "--output", "30"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "$0.0000775"


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tiered", "cost", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown model 'nope'" in proc.stderr


def test_a_run_on_the_embedded_models_never_imports_the_openai_sdk() -> None:
    """The SDK's import costs 1-2 s of every `tiered run` without a key; nothing there uses it."""
    code = (
        "import sys, tiered, tiered._cli, tiered._cli_run\n"
        "from tiered.models import models_from_env\n"
        "models_from_env({})\n"
        "assert 'openai' not in sys.modules, sorted(m for m in sys.modules if 'openai' in m)\n"
        "from tiered.models import OpenAIModel\n"
        "assert OpenAIModel.__module__ == 'tiered.models._openai'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "TIERED_BASE_URL")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
