"""CPU threads for the embedded models, and the gate that keeps servers from oversubscribing.

llama.cpp's threads spin at barriers, so two servers fighting over two cores ran at a
fraction of one's speed: servers in one process compute side by side only while their
threads fit the physical cores, and otherwise take turns, a request at a time.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from tiered._errors import UserError

__all__ = ("cores", "cpu_count", "default_threads")


def cpu_count() -> int:
    """Physical cores among the CPUs this process may run on (hyperthreads count once)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
    cores = {_core_of(cpu) for cpu in allowed}
    if None in cores:
        return max(1, len(allowed))
    return max(1, len(cores))


def _core_of(cpu: int) -> tuple[str, str] | None:
    """(package, core) of a logical CPU, from sysfs; None where sysfs does not say."""
    topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
    try:
        return (
            (topology / "physical_package_id").read_text().strip(),
            (topology / "core_id").read_text().strip(),
        )
    except OSError:
        return None


def default_threads() -> int:
    """Threads for a new server: `$TIERED_THREADS`, else one per physical core it may use.

    A load sample is no guide (it once chose 1 thread on an idle 2-core machine, and
    prompt reading ran 1.45x slower); the servers in one process share the cores by
    taking turns instead.
    """
    env = os.environ.get("TIERED_THREADS", "").strip()
    if not env:
        return cpu_count()
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"TIERED_THREADS must be a positive integer, not {env!r}")
    return value


class Cores:
    """Lets servers compute side by side only while their threads fit the cores."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: dict[int, tuple[int, int]] = {}  # server id -> (requests, threads)
        self._waiting: dict[int, int] = {}  # server id -> requests queued

    @contextlib.contextmanager
    def use(self, owner: int, threads: int) -> Iterator[None]:
        """Hold a share of the cores for one request of server `owner`."""
        with self._cond:
            self._waiting[owner] = self._waiting.get(owner, 0) + 1
            while not self._fits(owner, threads):
                self._cond.wait()
            self._waiting[owner] -= 1
            if not self._waiting[owner]:
                del self._waiting[owner]
            count, _ = self._active.get(owner, (0, threads))
            self._active[owner] = (count + 1, threads)
        try:
            yield
        finally:
            with self._cond:
                count, _ = self._active.pop(owner)
                if count > 1:
                    self._active[owner] = (count - 1, threads)
                self._cond.notify_all()

    def _fits(self, owner: int, threads: int) -> bool:
        others = sum(t for k, (_, t) in self._active.items() if k != owner)
        if others and others + threads > cpu_count():
            return False
        if owner in self._active and not others:
            return not any(k != owner for k in self._waiting)  # let a queued server in
        return True


cores = Cores()
"""The process's gate, shared by every server."""
