"""`HttpFetch`: GET pages from an allow-list of host:port pairs, checked before any connection.

Every redirect hop is checked again; a hop to another origin carries no `Authorization`,
`Proxy-Authorization` or `Cookie` header.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx2
from pydantic import BaseModel, Field

from tiered import ModelRetry, RunContext, Tool, UserError

__all__ = ("FetchResult", "HttpFetch")

_TEXTUAL = ("text/", "application/json", "application/xml", "application/xhtml", "+json", "+xml")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = frozenset({80, 443})
_SCHEME_PORTS = {"http": 80, "https": 443}
_CREDENTIALS = frozenset({"authorization", "proxy-authorization", "cookie"})


class FetchResult(BaseModel):
    """What a GET returned: status, content type and (possibly truncated) text."""

    url: str
    """The final URL, after any redirects."""
    status: int
    content_type: str
    text: str
    truncated: bool
    """True when the body was longer than the tool's byte limit and was cut."""


def _normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _split_entry(entry: str) -> tuple[str, frozenset[int]]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, ports); a bare host: 80 and 443."""
    text = entry.strip()
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(entry)
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port:
        return _normalize_host(host), _DEFAULT_PORTS
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(entry)
    return _normalize_host(host), frozenset({int(port)})


def _origin(url: httpx2.URL) -> tuple[str, str, int]:
    return (url.scheme, _normalize_host(url.host), url.port or _SCHEME_PORTS[url.scheme])


class HttpFetch(Tool):
    """Fetch a web page or API response with an HTTP GET and return its status and text.

    Only some hosts are allowed; a URL on any other host is refused.
    """

    timeout = 30.0

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        *,
        max_bytes: int = 200_000,
        max_redirects: int = 5,
        headers: dict[str, str] | None = None,
        client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """`allowed_hosts` holds exact hosts (`api.example.com`) or `*.example.com`.

        A bare entry allows ports 80 and 443 only; `host:8443` (or `[::1]:8080`) allows
        that one port. `*.example.com` allows every subdomain of example.com but not
        example.com itself. `headers` (an `Authorization`, say) go to the first URL's
        origin only: a redirect to another origin drops credentials and cookies.
        Pass `client` to share a connection pool (its own redirect setting is ignored:
        every redirect is checked against the allow-list), or `transport` for tests.
        """
        self._exact: dict[str, frozenset[int]] = {}
        self._suffixes: list[tuple[str, frozenset[int]]] = []
        for entry in allowed_hosts:
            try:
                host, ports = _split_entry(entry)
            except ValueError:
                host, ports = "", _DEFAULT_PORTS
            if host.startswith("*.") and "*" not in host[1:] and "/" not in host:
                self._suffixes.append((host[1:], ports))
            elif host and "*" not in host and "/" not in host:
                self._exact[host] = self._exact.get(host, frozenset()) | ports
            else:
                raise UserError(
                    f"allowed host {entry!r}: use an exact host or '*.suffix', optionally with "
                    "':port' (else ports 80 and 443), no scheme or path"
                )
        if not self._exact and not self._suffixes:
            raise UserError("HttpFetch needs at least one allowed host")
        if client is not None and transport is not None:
            raise UserError("pass `client` or `transport`, not both")
        self.description = f"{type(self).description}\nAllowed hosts: {self._allowed()}."
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._headers = headers or {}
        self._client = client
        self._transport = transport

    def allows(self, host: str, port: int = 443) -> bool:
        """Whether a request to `host` on `port` is allowed."""
        host = _normalize_host(host)
        if port in self._exact.get(host, ()):
            return True
        return any(host.endswith(s) and port in ports for s, ports in self._suffixes)

    def _allowed(self) -> str:
        def shown(host: str, ports: frozenset[int]) -> list[str]:
            if ports == _DEFAULT_PORTS:
                return [host]
            host = f"[{host}]" if ":" in host else host
            return [f"{host}:{p}" for p in sorted(ports)]

        names = [n for h, p in self._exact.items() for n in shown(h, p)]
        names += [n for s, p in self._suffixes for n in shown("*" + s, p)]
        return ", ".join(sorted(names))

    class Args(BaseModel):
        url: str = Field(description="Absolute http(s) URL on an allowed host")

    async def run(self, args: Args, ctx: RunContext[Any]) -> FetchResult:
        """GET `args.url`, following redirects only to allowed hosts."""
        url = self._checked(args.url)
        if self._client is not None:
            return await self._fetch(self._client, url, owned=False)
        async with httpx2.AsyncClient(transport=self._transport) as client:
            return await self._fetch(client, url, owned=True)

    def _checked(self, raw: str | httpx2.URL) -> httpx2.URL:
        try:
            url = httpx2.URL(raw)
        except httpx2.InvalidURL as exc:
            raise ModelRetry(
                f"{str(raw)!r} is not a valid URL ({exc}); send an absolute URL"
            ) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ModelRetry(f"{str(raw)!r} is not an absolute http(s) URL; send one")
        _, host, port = _origin(url)
        if not self.allows(host, port):
            known = host in self._exact or any(host.endswith(s) for s, _ in self._suffixes)
            what = f"port {port} of {host!r}" if known else f"host {url.host!r}"
            raise PermissionError(
                f"{what} is not allowed; allowed hosts: {self._allowed()}. "
                "Do not try other hosts or ports."
            )
        return url

    async def _fetch(
        self, client: httpx2.AsyncClient, url: httpx2.URL, *, owned: bool
    ) -> FetchResult:
        """GET with redirects checked by hand; `owned`: the client is ours, its jar too."""
        headers = dict(self._headers)
        origin = _origin(url)
        for _ in range(self.max_redirects + 1):
            async with client.stream(
                "GET", url, headers=headers, follow_redirects=False
            ) as response:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    url = self._checked(url.join(location))
                    if _origin(url) != origin:  # credentials stay with the origin given them
                        headers = {
                            k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS
                        }
                    continue
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        break
                truncated = len(body) > self.max_bytes
                content_type = response.headers.get("content-type", "")
                if _is_textual(content_type):
                    text = bytes(body[: self.max_bytes]).decode(
                        response.encoding or "utf-8", errors="replace"
                    )
                else:
                    text = f"(binary content of type {content_type or 'unknown'} not shown)"
                return FetchResult(
                    url=str(url),
                    status=response.status_code,
                    content_type=content_type,
                    text=text,
                    truncated=truncated,
                )
        raise ValueError(f"more than {self.max_redirects} redirects; stopped at {url}")


def _is_textual(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or any(media.startswith(t) or media.endswith(t) for t in _TEXTUAL)
