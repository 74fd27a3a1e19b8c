"""`make test-fast` collects without the `local` extra; the full suite refuses to run without it.

Each case runs pytest in a subprocess with `xllamacpp` made unimportable
(`sys.modules["xllamacpp"] = None`), as on a machine without the extra.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two pytest subprocesses

ROOT = Path(__file__).resolve().parent.parent
WITHOUT_EXTRA = (
    "import sys; sys.modules['xllamacpp'] = None; import pytest; "
    "sys.exit(pytest.main(sys.argv[1:]))"
)
LOCAL_FILES = ("tests/test_local_model.py", "tests/test_example_e2e.py")


def _pytest_without_extra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, "-q", "-p", "no:cacheprovider", "--co", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_fast_selection_collects_without_the_local_extra() -> None:
    done = _pytest_without_extra(
        "-m", "not local_model and not slow", *LOCAL_FILES, "tests/test_answer_check.py"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_answer_check.py::" in done.stdout
    assert "test_local_model.py::" not in done.stdout


def test_the_full_suite_fails_loudly_without_the_local_extra() -> None:
    done = _pytest_without_extra(*LOCAL_FILES)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "need the `local` extra (xllamacpp), which is missing" in done.stdout + done.stderr
