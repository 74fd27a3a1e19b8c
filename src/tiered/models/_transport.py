"""Transport failures classified by what they mean for a retry and for the bill, and the
request labels sent as headers. Used by `OpenAIModel` (and any other HTTP model)."""

from __future__ import annotations

from typing import Final, Literal

import httpx2

__all__ = ("CONNECT_TIMEOUT_S", "failure_kind", "metadata_headers")

CONNECT_TIMEOUT_S: Final = 10.0
"""Seconds to open a connection before `ProviderUnreachable`/`ModelTimeout`."""
_HEADER_VALUE_MAX: Final = 128


_FailureKind = Literal["unreachable", "connect_timeout", "read_timeout", "dropped"]


def _failure_classes() -> list[tuple[type[BaseException], _FailureKind]]:
    """Exception classes that say what happened, most specific first. aiohttp's transport
    maps a refused connection (and a server hanging up) to httpx's ConnectTimeout, so the
    original cause decides, not the mapped one."""
    import socket

    table: list[tuple[type[BaseException], _FailureKind]] = []
    try:
        import aiohttp
    except ImportError:
        pass
    else:
        table += [
            (aiohttp.ClientConnectorError, "unreachable"),
            (aiohttp.ConnectionTimeoutError, "connect_timeout"),
            (aiohttp.ServerTimeoutError, "read_timeout"),
            (aiohttp.ServerDisconnectedError, "dropped"),
            (aiohttp.ClientPayloadError, "dropped"),
        ]
    table += [
        (ConnectionRefusedError, "unreachable"),
        (socket.gaierror, "unreachable"),
        (httpx2.ConnectError, "unreachable"),
        (httpx2.RemoteProtocolError, "dropped"),
        (httpx2.ReadError, "dropped"),
        (httpx2.ConnectTimeout, "connect_timeout"),
        (httpx2.PoolTimeout, "connect_timeout"),
        (httpx2.WriteTimeout, "connect_timeout"),
        (httpx2.ReadTimeout, "read_timeout"),
        (httpx2.TimeoutException, "read_timeout"),
        (TimeoutError, "read_timeout"),
    ]
    return table


_FAILURE_CLASSES: Final = _failure_classes()


def failure_kind(exc: BaseException) -> tuple[_FailureKind, BaseException]:
    """What a transport failure was, and the exception that says so: the deepest
    recognised one in its chain."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 16:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for link in reversed(chain):
        for cls, kind in _FAILURE_CLASSES:
            if isinstance(link, cls):
                return kind, link
    return "dropped", exc


def metadata_headers(metadata: dict[str, str]) -> dict[str, str]:
    """`x-tiered-agent` / `x-tiered-subtask` from the request's labels (printable ASCII)."""
    headers: dict[str, str] = {}
    for key, header in (("agent", "x-tiered-agent"), ("subtask_id", "x-tiered-subtask")):
        value = metadata.get(key)
        if value:
            clean = "".join(c for c in value if " " <= c <= "~")[:_HEADER_VALUE_MAX]
            if clean:
                headers[header] = clean
    return headers
