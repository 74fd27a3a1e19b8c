"""The HTTP side of a model: which client library carries requests, timeouts, where a URL
points, transport failures classified by what they mean for a retry and for the bill, and
the request labels sent as headers. Used by `OpenAIModel` (and any other HTTP model)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import anyio.lowlevel
import httpx2
import sniffio

from tiered._errors import UserError

if TYPE_CHECKING:
    import aiohttp

__all__ = (
    "CONNECT_TIMEOUT_S",
    "aiohttp_timeout",
    "failure_kind",
    "host",
    "http_timeout",
    "is_loopback",
    "loop_token",
    "metadata_headers",
    "sized_read_timeout",
    "use_aiohttp",
)

CONNECT_TIMEOUT_S: Final = 10.0
"""Seconds to open a connection before `ProviderUnreachable`/`ModelTimeout`."""
_HEADER_VALUE_MAX: Final = 128
_READ_BASE_S: Final = 30.0
_READ_TOKENS_PER_S: Final = 50.0
_READ_MAX_S: Final = 600.0


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


def sized_read_timeout(max_output_tokens: int) -> float:
    """Seconds to wait for an answer of up to `max_output_tokens`: 30 s plus 50 tokens a
    second, at most 600 s."""
    return min(_READ_BASE_S + max_output_tokens / _READ_TOKENS_PER_S, _READ_MAX_S)


_TIMEOUTS: dict[float, httpx2.Timeout] = {}


def http_timeout(read: float) -> httpx2.Timeout:
    """The client timeout for a read timeout of `read` seconds (built once per value)."""
    timeout = _TIMEOUTS.get(read)
    if timeout is None:
        if len(_TIMEOUTS) > 256:
            _TIMEOUTS.clear()
        timeout = _TIMEOUTS[read] = httpx2.Timeout(read, connect=CONNECT_TIMEOUT_S)
    return timeout


_AIOHTTP_TIMEOUTS: dict[float, Any] = {}


def aiohttp_timeout(read: float) -> aiohttp.ClientTimeout:
    """The same timeouts for a bare aiohttp request (built once per value): connect within
    10 s, each read and a pool slot within `read` s, as the SDK's aiohttp bridge maps
    `http_timeout`'s."""
    timeout = _AIOHTTP_TIMEOUTS.get(read)
    if timeout is None:
        import aiohttp

        if len(_AIOHTTP_TIMEOUTS) > 256:
            _AIOHTTP_TIMEOUTS.clear()
        timeout = _AIOHTTP_TIMEOUTS[read] = aiohttp.ClientTimeout(
            total=None, connect=read, sock_connect=CONNECT_TIMEOUT_S, sock_read=read
        )
    return timeout


def host(url: str) -> str | None:
    """The host name in `url`."""
    return urlsplit(url).hostname


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    name = host(url)
    if name is None:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def loop_token() -> object:
    """The running event loop's identity: a client built on one loop is not reused on
    another (a second `anyio.run` in the same process)."""
    try:
        return anyio.lowlevel.current_token()
    except RuntimeError:
        return None


def use_aiohttp(transport: str) -> bool:
    """aiohttp when asked, or by default on asyncio when it is installed.

    The benchmarks (BENCHMARKS.md) measured it at about two thirds of httpx2's client CPU
    per call and far less pool overhead at hundreds of requests in flight; httpx2 stays
    for trio and when aiohttp is missing.
    """
    if transport == "httpx2":
        return False
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        if transport == "aiohttp":
            raise UserError(
                "transport='aiohttp' needs aiohttp: pip install 'openai[aiohttp]'"
            ) from None
        return False
    if transport == "aiohttp":
        return True
    return sniffio.current_async_library() == "asyncio"
