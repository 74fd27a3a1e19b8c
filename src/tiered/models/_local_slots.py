"""Which llama.cpp slot holds which prompt, and which stable prefixes are being read now.

A slot is chosen by the prompt it already holds. When several requests with the same
cold prefix (the system turn) arrive together, as a fan-out of one agent does, the first
reads the prefix once and saves it, and the others restore that state instead of each
reading the same tokens again in its own slot.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

__all__ = ("PrefixRead", "SlotTable", "prepare_dir", "runtime", "wait_for")

_WAIT_STEP_S = 0.05


@dataclass(slots=True)
class _Slot:
    """What we know of one llama.cpp slot: its last prompt, requests on it, last use."""

    prompt: str = ""
    busy: int = 0
    used: float = 0.0


@dataclass(slots=True)
class PrefixRead:
    """One request's part in reading a cold prefix: lead the read, or wait for it."""

    lead: bool
    done: threading.Event = field(default_factory=threading.Event)


class SlotTable:
    """The slots of one server and the prefixes being read into them."""

    def __init__(self, count: int) -> None:
        self._slots = [_Slot() for _ in range(count)]
        self._lock = threading.Lock()
        self._reading: dict[str, PrefixRead] = {}

    def take(self, prompt: str, prefix: str) -> tuple[int, str, bool]:
        """(slot, prefix key, whether the slot lacks the prefix) for a new request.

        The idle slot whose last prompt shares the longest start with this one wins
        (an agent's next turn goes back to its own slot; a second conversation on the
        same agent takes another), then the least recently used.
        """
        key = hashlib.sha256(prefix.encode()).hexdigest()[:16]
        with self._lock:

            def rank(i: int) -> tuple[bool, int, float]:
                slot = self._slots[i]
                shared = _shared(prompt, slot.prompt)
                if shared < len(prefix):  # a few shared characters do not justify evicting
                    shared = 0
                return (slot.busy > 0, -shared, slot.used)

            index = min(range(len(self._slots)), key=rank)
            slot = self._slots[index]
            lacks = not slot.prompt.startswith(prefix)
            slot.busy += 1
            slot.prompt, slot.used = prompt, time.monotonic()
            return index, key, lacks

    def release(self, index: int) -> None:
        """The request on slot `index` is over."""
        with self._lock:
            self._slots[index].busy -= 1

    def join_read(self, key: str) -> PrefixRead:
        """Lead the read of prefix `key` if nobody is reading it, else wait on the leader."""
        with self._lock:
            current = self._reading.get(key)
            if current is not None:
                return PrefixRead(lead=False, done=current.done)
            read = self._reading[key] = PrefixRead(lead=True)
            return read

    def end_read(self, key: str, read: PrefixRead) -> None:
        """The leader is done (saved or not): wake every request waiting on it."""
        with self._lock:
            if self._reading.get(key) is read:
                del self._reading[key]
        read.done.set()


def wait_for(read: PrefixRead, cancel: threading.Event, timeout_s: float) -> None:
    """Block until the leader's read is done, the request is cancelled, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not read.done.wait(_WAIT_STEP_S):
        if cancel.is_set() or time.monotonic() >= deadline:
            return


def _shared(a: str, b: str) -> int:
    """Length of the common start of `a` and `b` (a binary search over slices)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def runtime() -> str:
    """The llama.cpp runtime's version: saved state is only valid for the one that wrote it."""
    try:
        return metadata.version("xllamacpp")
    except metadata.PackageNotFoundError:
        return "unknown"


def prepare_dir(directory: Path) -> Path | None:
    """`directory`, created; None when saving slots is off or impossible here."""
    if not str(directory) or str(directory) == ".":
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory
