"""`HttpFetch`: GET pages from an allow-list of hosts, checked before any connection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx2
from pydantic import BaseModel, Field

from tiered import ModelRetry, RunContext, Tool, UserError

__all__ = ("FetchResult", "HttpFetch")

_TEXTUAL = ("text/", "application/json", "application/xml", "application/xhtml", "+json", "+xml")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


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

        `*.example.com` allows every subdomain of example.com but not example.com itself.
        Pass `client` to share a connection pool (its own redirect setting is ignored:
        every redirect is checked against the allow-list), or `transport` for tests.
        """
        self._exact: set[str] = set()
        self._suffixes: list[str] = []
        for entry in allowed_hosts:
            host = _normalize_host(entry)
            if host.startswith("*."):
                self._suffixes.append(host[1:])
            elif host and "*" not in host and "/" not in host:
                self._exact.add(host)
            else:
                raise UserError(
                    f"allowed host {entry!r}: use an exact host or '*.suffix', no scheme or path"
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

    def allows(self, host: str) -> bool:
        """Whether a request to `host` is allowed."""
        host = _normalize_host(host)
        return host in self._exact or any(host.endswith(s) for s in self._suffixes)

    def _allowed(self) -> str:
        return ", ".join(sorted([*self._exact, *("*" + s for s in self._suffixes)]))

    class Args(BaseModel):
        url: str = Field(description="Absolute http(s) URL on an allowed host")

    async def run(self, args: Args, ctx: RunContext[Any]) -> FetchResult:
        """GET `args.url`, following redirects only to allowed hosts."""
        url = self._checked(args.url)
        if self._client is not None:
            return await self._fetch(self._client, url)
        async with httpx2.AsyncClient(transport=self._transport) as client:
            return await self._fetch(client, url)

    def _checked(self, raw: str | httpx2.URL) -> httpx2.URL:
        try:
            url = httpx2.URL(raw)
        except httpx2.InvalidURL as exc:
            raise ModelRetry(
                f"{str(raw)!r} is not a valid URL ({exc}); send an absolute URL"
            ) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ModelRetry(f"{str(raw)!r} is not an absolute http(s) URL; send one")
        if not self.allows(url.host):
            raise PermissionError(
                f"host {url.host!r} is not allowed; allowed hosts: {self._allowed()}. "
                "Do not try other hosts."
            )
        return url

    async def _fetch(self, client: httpx2.AsyncClient, url: httpx2.URL) -> FetchResult:
        for _ in range(self.max_redirects + 1):
            async with client.stream(
                "GET", url, headers=self._headers, follow_redirects=False
            ) as response:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    url = self._checked(url.join(location))
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
