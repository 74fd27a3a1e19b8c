"""One process at a time per run directory: two resumes of the same run would both
redo the side effects that were in flight at the crash.

The lock is a POSIX record lock on `journal.lock` in the run directory: the kernel
drops it when the process ends, a `kill -9` included, so a crashed run is never left
locked, and `tiered runs` can tell a run that is going from one that was interrupted.
Journals of one process share one lock per directory (POSIX locks belong to the
process, and closing any descriptor of the file would drop them).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import IO

if sys.platform != "win32":
    import fcntl

__all__ = ("LOCK_FILE", "hold", "in_use", "release")

LOCK_FILE = "journal.lock"
_WAIT_S = 1.0  # a `tiered runs` probe holds the lock for microseconds: outwait it
_held: dict[Path, tuple[IO[str], int]] = {}
_guard = threading.Lock()


def _try_lock(f: IO[str]) -> bool:
    if sys.platform == "win32":
        return True  # no record locks here: one process per run directory is up to you
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def hold(run_dir: Path) -> bool:
    """Take the run directory for this process; False if another process has it."""
    key = run_dir.resolve()
    with _guard:
        if key in _held:
            f, count = _held[key]
            _held[key] = (f, count + 1)
            return True
        f = open(key / LOCK_FILE, "a+")  # noqa: SIM115 (kept open while the lock is held)
        deadline = time.monotonic() + _WAIT_S
        while not _try_lock(f):
            if time.monotonic() > deadline:
                f.close()
                return False
            time.sleep(0.02)
        _held[key] = (f, 1)
        return True


def release(run_dir: Path) -> None:
    """Give back one `hold` of the run directory (the last one unlocks it)."""
    key = run_dir.resolve()
    with _guard:
        if key not in _held:
            return
        f, count = _held.pop(key)
        if count > 1:
            _held[key] = (f, count - 1)
        else:
            f.close()


def in_use(run_dir: Path) -> bool:
    """Whether a process (this one included) holds the run directory now."""
    key = run_dir.resolve()
    with _guard:
        if key in _held:
            return True
    if sys.platform == "win32" or not (key / LOCK_FILE).exists():
        return False
    with open(key / LOCK_FILE, "a+") as f:
        if not _try_lock(f):
            return True
        fcntl.lockf(f, fcntl.LOCK_UN)
    return False
