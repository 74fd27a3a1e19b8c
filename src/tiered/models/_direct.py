"""A bare aiohttp POST for the non-streamed calls of `OpenAIModel`.

The SDK's request path (request options, an httpx request and response bridged onto
aiohttp) costs about 600 µs of client CPU a call, three times the POST itself
(BENCHMARKS.md, "Client CPU per single-turn call"); at hundreds of calls in flight that
CPU is the makespan. This client sends what the SDK sends for such a call (the bearer key,
JSON, `OpenAI-Organization` / `OpenAI-Project` from the environment) and hands back the
status, headers and bytes for `OpenAIModel` to read or turn into a `ModelError`.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any, Final

from tiered.models._transport import aiohttp_timeout

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    import aiohttp

__all__ = ("DirectClient", "DirectReply")

_MAX_CONNECTIONS: Final = 1000
"""The openai SDK's own pool size, so switching paths changes no concurrency."""
_KEEPALIVE_S: Final = 5.0
"""httpx's keep-alive expiry, which the SDK's aiohttp bridge passes on."""
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class DirectReply:
    """What came back for one POST: status, headers (case-insensitive), raw header pairs and
    the body."""

    __slots__ = ("content", "headers", "raw_headers", "status")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        raw_headers: tuple[tuple[bytes, bytes], ...],
        content: bytes,
    ) -> None:
        self.status = status
        self.headers = headers
        self.raw_headers = raw_headers
        self.content = content


class DirectClient:
    """One aiohttp session POSTing JSON to an OpenAI-compatible API root; made on the event
    loop it serves (`OpenAIModel` makes another for another loop)."""

    __slots__ = (
        "_closer",
        "_headers",
        "_proxy",
        "_proxy_auth",
        "_root",
        "_session",
        "api_key",
    )

    def __init__(self, base_url: str, api_key: str, user_agent: str) -> None:
        import aiohttp

        self.api_key = api_key
        self._root = base_url.rstrip("/")
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        organization = os.environ.get("OPENAI_ORG_ID")
        project = os.environ.get("OPENAI_PROJECT_ID")
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        self._headers = headers
        ssl: Any = True
        if self._root.startswith("https:"):
            import httpx2  # the SDK's certificate store (certifi, SSL_CERT_FILE), not the OS's

            ssl = httpx2.create_ssl_context()
        connector = aiohttp.TCPConnector(
            limit=_MAX_CONNECTIONS, keepalive_timeout=_KEEPALIVE_S, ssl=ssl
        )
        # The proxy from the environment is looked up once: aiohttp's `trust_env` looks it
        # (and ~/.netrc) up on a worker thread for every request, two thread hops a call.
        self._proxy, self._proxy_auth = _env_proxy(self._root)
        self._session = aiohttp.ClientSession(connector=connector)
        self._closer = _close_at_loop_end(self._session)

    async def post(
        self, path: str, body: dict[str, Any], read_timeout: float, headers: dict[str, str]
    ) -> DirectReply:
        """POST `body` as JSON to `path` under the root; raise aiohttp's or the socket's own
        exception when no answer is read (`ErrorConverter.transport_failure` reads them)."""
        data = _ENCODER.encode(body).encode()
        sent = {**self._headers, **headers} if headers else self._headers
        async with self._session.post(
            self._root + path,
            data=data,
            headers=sent,
            timeout=aiohttp_timeout(read_timeout),
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as response:
            content = await response.read()
            return DirectReply(response.status, response.headers, response.raw_headers, content)

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._session.close()


def _env_proxy(root: str) -> tuple[Any, Any]:
    """The proxy `HTTP(S)_PROXY` / `NO_PROXY` give for the API root, and its credentials
    (None, None when there is none)."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(root))
    except LookupError:
        return None, None


async def _closing(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await session.close()


def _close_at_loop_end(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    """An async generator, started and parked, that closes `session` when finalised.

    The event loop finalises the async generators it saw when it shuts down
    (`shutdown_asyncgens`, which `asyncio.run` and `anyio.run` call), or when one is
    dropped: so a model used once per `run_sync` in a notebook leaves no open session
    and sockets behind its finished loop, though nobody called `aclose()`.
    """
    closer = _closing(session)
    step: Any = closer.__anext__()  # the loop's first-iteration hook registers it here
    with contextlib.suppress(StopIteration):  # raised once it is parked at its `yield`
        step.send(None)
    return closer
