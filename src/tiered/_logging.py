"""structlog plumbing: quiet by default inside a library, secrets redacted always.

If the application configured structlog, its configuration wins (so
`structlog.testing.capture_logs()` sees our events), with `redact_secrets` run first;
otherwise warnings and errors go to stderr and nothing else is printed, or, while a
live view has called `route_logs`, to that view (so they do not break it).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO, cast

import structlog

__all__ = ("get_logger", "info_enabled", "redact_secrets", "route_logs")

_SECRET_KEYS = frozenset({"api_key", "authorization", "headers", "password", "secret", "token"})
_SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9_\-\.]+)")
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in _SECRET_KEYS else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank API keys, bearer tokens and secret-named fields."""
    for key in list(event_dict):
        event_dict[key] = REDACTED if key.lower() in _SECRET_KEYS else _scrub(event_dict[key])
    return event_dict


_quiet: Any = None
_sink: Callable[[str, str], None] | None = None


@contextmanager
def route_logs(sink: Callable[[str, str], None]) -> Iterator[None]:
    """While inside, our warnings go to `sink(level, text)` instead of stderr.

    For a live progress view: it prints them in its own format, above itself. Applies
    only when the application has not configured structlog.
    """
    global _sink
    previous, _sink = _sink, sink
    try:
        yield
    finally:
        _sink = previous


def _to_sink(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: hand the line to the routed sink, if any, and drop it here."""
    sink = _sink
    if sink is None:
        return event_dict
    fields = " ".join(f"{k}={v}" for k, v in event_dict.items() if k != "event")
    sink(method, f"{event_dict.get('event', '')} {fields}".strip())
    raise structlog.DropEvent


class _Stderr:
    """Writes to whatever `sys.stderr` is at the time (it may be swapped after import)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _QuietLogger:
    """The unconfigured default: debug and info cost nothing; warnings bind on first use."""

    __slots__ = ("_bound", "_logger")

    def __init__(self, bound: dict[str, Any]) -> None:
        self._bound = bound
        self._logger: Any = None

    def _real(self) -> Any:
        if self._logger is None:
            self._logger = _quiet_base().bind(**self._bound)
        return self._logger

    def debug(self, *args: Any, **kw: Any) -> None:
        """Dropped: the default logger prints warnings and errors only."""

    def info(self, *args: Any, **kw: Any) -> None:
        """Dropped: the default logger prints warnings and errors only."""

    def warning(self, *args: Any, **kw: Any) -> Any:
        """Printed to stderr with the bound context."""
        return self._real().warning(*args, **kw)

    def error(self, *args: Any, **kw: Any) -> Any:
        """Printed to stderr with the bound context."""
        return self._real().error(*args, **kw)

    def exception(self, *args: Any, **kw: Any) -> Any:
        """Printed to stderr with the bound context."""
        return self._real().exception(*args, **kw)

    def bind(self, **more: Any) -> _QuietLogger:
        """A quiet logger with more context."""
        return _QuietLogger({**self._bound, **more})


def info_enabled() -> bool:
    """True when INFO lines go anywhere (the application configured structlog)."""
    return structlog.is_configured()


def get_logger(**bound: Any) -> Any:
    """A structlog logger for `tiered`, bound to `bound`.

    Unconfigured, it is a quiet logger whose debug/info calls cost nothing (the
    framework logs per call, so binding eagerly would tax every request).
    """
    if structlog.is_configured():
        # the application's processors, behind ours: secrets are redacted before any of them
        processors = [redact_secrets, *structlog.get_config()["processors"]]
        return structlog.wrap_logger(
            None, processors=processors, logger_factory_args=("tiered",)
        ).bind(**bound)
    return _QuietLogger(bound)


def _quiet_base() -> Any:
    global _quiet
    if _quiet is None:
        _quiet = structlog.wrap_logger(
            structlog.PrintLogger(cast(TextIO, _Stderr())),
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            processors=[
                redact_secrets,
                _to_sink,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.dev.ConsoleRenderer(colors=False),
            ],
        )
    return _quiet
