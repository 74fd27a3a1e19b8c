"""`OpenAIModel`: the Responses API on OpenAI, chat completions on any OpenAI-compatible
server (vLLM, Ollama, llama.cpp server), streamed or not.

This is the facade: the clients and the guard live here. Non-streamed calls on a client
the model owns go out on `_direct`'s bare aiohttp session under asyncio, everything else
through the openai SDK; either way a failure becomes a `ModelError` subclass in
`_openai_errors`. The HTTP details (client library, timeouts, loopback) are
`_transport`'s; each API's bodies and stream events are built and read in its own module
(`_chat`, `_responses`), through `_wire`'s typed reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal

import httpx2
import openai

from tiered._catalog import Catalog, ModelSpec, Tier
from tiered._errors import ModelError, UserError
from tiered._messages import ModelRequest, ModelResponse
from tiered._usage import Usage
from tiered.models import _chat, _responses, _wire
from tiered.models._direct import DirectClient, DirectReply
from tiered.models._guard import remote_requests_allowed
from tiered.models._openai_config import (
    NO_KEY,
    OPENAI_BASE_URL,
    USER_AGENT,
    Secret,
    api_key,
    resolve_spec,
)
from tiered.models._openai_errors import TIMEOUT_OR_TRANSPORT, ErrorConverter, rate_limit_info
from tiered.models._transport import (
    host,
    http_timeout,
    is_loopback,
    loop_token,
    metadata_headers,
    sized_read_timeout,
    use_aiohttp,
)

__all__ = ("OpenAIModel",)

Api = Literal["responses", "chat"]


class OpenAIModel:
    """A model served through the OpenAI API, at any `base_url`.

    `api="responses"` speaks `/v1/responses` (input items, reasoning together with tools,
    encrypted reasoning carried across turns, a `prompt_cache_key` per agent);
    `api="chat"` speaks `/v1/chat/completions`, which OpenAI-compatible servers (vLLM,
    Ollama, llama.cpp) implement. The default is "responses" on OpenAI's own endpoint
    (api.openai.com) and "chat" for any other base URL. On chat completions a gpt-5.4
    model never gets function tools and `reasoning_effort` together (OpenAI rejects the
    pair there): `reasoning_effort` is dropped with a logged warning; use "responses".

    When `request.on_delta` is set the answer is streamed (SSE) and each `TextDelta` /
    `ToolCallDelta` is handed to it as it arrives; the return value is the same either
    way (a server that ignores `stream: true` is read whole). An answer cut off at the
    token cap raises `OutputTruncated`, a refusal or a content-filter stop `Refused`, an
    unreadable body or a stream that stops before its end `BadModelResponse` (with
    `.usage` when the body reported it).

    Retries are off in the SDK (`max_retries=0`) because they belong to `RetryingModel`.
    Each request has a connect timeout (10 s) and a read timeout sized from its output
    cap (30 s plus 50 tokens a second, at most 600 s) unless `read_timeout` is given; a
    caller's deadline is its own (`anyio.fail_after`). Call `aclose()` (or use
    `async with`) to release the HTTP client this model created. The request's
    `metadata` labels go out as `x-tiered-agent` / `x-tiered-subtask` headers. A model
    the catalog does not know needs `tier=`; `equivalent="gpt-5.4-nano"` meters it at that
    OpenAI model's prices, and without one its price is unknown (reported so, never $0).
    """

    def __init__(
        self,
        name: str,
        *,
        spec: ModelSpec | None = None,
        tier: Tier | None = None,
        client: openai.AsyncOpenAI | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int = 0,
        catalog: Catalog | None = None,
        transport: Literal["auto", "aiohttp", "httpx2"] = "auto",
        read_timeout: float | None = None,
        api: Api | None = None,
        equivalent: str | None = None,
    ) -> None:
        if client is not None and (
            base_url is not None or api_key is not None or http_client is not None
        ):
            raise UserError(
                "OpenAIModel takes either `client=` or `base_url=`/`api_key=`/`http_client=`: "
                "configure the AsyncOpenAI client yourself, or let the model build one"
            )
        self._name = name
        self._spec = resolve_spec(name, spec, tier, catalog, equivalent)
        self._client = client
        self._owns_client = client is None
        self._http_client = http_client
        self._transport = transport
        self._client_loop: object = None
        self._direct: DirectClient | None = None
        self._direct_loop: object = None
        # Non-streamed calls skip the SDK when we own the whole HTTP path (BENCHMARKS.md).
        self._direct_allowed = client is None and http_client is None and max_retries == 0
        self._max_retries = max_retries
        self._read_timeout = read_timeout
        self._api_key = Secret(api_key) if api_key is not None else None
        if client is not None:
            self._base_url = str(client.base_url)
        else:
            self._base_url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        if api not in (None, "responses", "chat"):
            raise UserError(f"api={api!r}: use 'responses', 'chat', or leave it unset")
        self._api: Api = api or (
            "responses" if host(self._base_url) == host(OPENAI_BASE_URL) else "chat"
        )
        wire = _responses if self._api == "responses" else _chat
        self._build: Callable[..., dict[str, Any]] = wire.body
        self._parse: Callable[..., ModelResponse] = wire.parse
        # A caller who hands us the client or transport decides where requests go.
        self._guard_exempt = (
            client is not None or http_client is not None or is_loopback(self._base_url)
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIModel({self._name!r}, tier={self._spec.tier.value!r}, "
            f"base_url={self._base_url!r}, api={self._api!r})"
        )

    @property
    def spec(self) -> ModelSpec:
        """Name, tier and prices this model's calls are metered at."""
        return self._spec

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._base_url

    @property
    def api(self) -> Api:
        """Which OpenAI API this model speaks: "responses" or "chat"."""
        return self._api

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one request (streamed when `request.on_delta` is set); raise a `ModelError`
        subclass on failure."""
        if not self._guard_exempt and not remote_requests_allowed():
            raise UserError(
                f"remote model requests are disabled (allow_remote_requests(False)): model "
                f"{self._name!r} would call {self._base_url}; in tests use ScriptedModel, pass "
                "`http_client=` with an httpx2.MockTransport, or a loopback `base_url`"
            )
        stream = request.on_delta is not None
        body = self._build(self._name, request, stream=stream)
        path = "/responses" if self._api == "responses" else "/chat/completions"
        read_timeout = self._read_timeout
        if read_timeout is None:  # sized from the output cap
            cap = request.max_output_tokens or self._spec.max_output_tokens
            read_timeout = sized_read_timeout(cap)
        headers = metadata_headers(request.metadata)
        if not stream and self._direct_allowed:
            if self._direct_loop != loop_token():
                self._open_direct()
            direct = self._direct
            if direct is not None:
                return await self._post_direct(direct, path, body, request, read_timeout, headers)
        client = self._client
        if client is None or (self._owns_client and self._client_loop != loop_token()):
            client = self._connect()
        options: Any = {}
        if self._owns_client or self._read_timeout is not None:  # else the client's own
            options["timeout"] = http_timeout(read_timeout)
        if headers:
            options["headers"] = headers
        error: ModelError | None = None
        try:
            if stream:
                return await self._stream(client, path, body, request, options)
            response = await client.post(path, cast_to=httpx2.Response, body=body, options=options)
        except openai.OpenAIError as exc:
            error = self._errors().convert(exc, read_timeout)
        except TIMEOUT_OR_TRANSPORT as exc:  # aiohttp's own, unconverted
            error = self._errors().transport_failure(exc, read_timeout)
        if error is not None:
            # Raised outside the handler, so neither __cause__ nor __context__ holds the
            # SDK's exception (its request carries the API key).
            raise error
        return self._answer(
            response.content, response.status_code, response.headers, response.headers.raw, request
        )

    async def _post_direct(
        self,
        direct: DirectClient,
        path: str,
        body: dict[str, Any],
        request: ModelRequest,
        read_timeout: float,
        headers: dict[str, str],
    ) -> ModelResponse:
        """One non-streamed call on the bare aiohttp path, failures read as the SDK's."""
        reply: DirectReply | None = None
        try:
            reply = await direct.post(path, body, read_timeout, headers)
        except TIMEOUT_OR_TRANSPORT as exc:
            error = self._errors().transport_failure(exc, read_timeout)
        if reply is None:
            raise error  # outside the handler: no chained exception holds the request
        if not 200 <= reply.status < 300:
            raise self._errors().status_failure(
                reply.status, reply.headers, reply.raw_headers, reply.content
            )
        return self._answer(reply.content, reply.status, reply.headers, reply.raw_headers, request)

    def _answer(
        self,
        content: bytes,
        status: int,
        headers: Mapping[str, str],
        raw_headers: Iterable[tuple[bytes, bytes]],
        request: ModelRequest,
    ) -> ModelResponse:
        """The `ModelResponse` of a 2xx body, with the rate-limit headers it came with."""
        info = rate_limit_info(headers, raw_headers)
        try:
            result = self._read(content, status, request)
        except ModelError as exc:
            exc.rate_limit = info
            if exc.usage is None:
                exc.possibly_billed = True  # the answer arrived; the provider billed it
            raise
        return result if info is None else replace(result, rate_limit=info)

    async def aclose(self) -> None:
        """Close the HTTP clients this model created (a client or transport passed in is
        left to its owner)."""
        if self._owns_client and self._http_client is None and self._client is not None:
            await self._client.close()
        self._client = None if self._owns_client else self._client
        direct, self._direct = self._direct, None
        self._direct_loop = None  # the next call opens a new one, on whatever loop it runs
        if direct is not None:
            await direct.aclose()

    async def __aenter__(self) -> OpenAIModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- client -------------------------------------------------------------------

    def _key(self) -> str:
        """The key to send, looked up at first use so a model can be configured before a
        key is."""
        return api_key(self._api_key, self._base_url, self._name)

    def _open_direct(self) -> None:
        """Make the bare aiohttp client for this event loop, or none where the SDK's path
        is the one to take (httpx2 asked for, trio, aiohttp missing)."""
        self._direct = None
        if use_aiohttp(self._transport):
            self._direct = DirectClient(self._base_url, self._key(), USER_AGENT)
        self._direct_loop = loop_token()

    def _connect(self) -> openai.AsyncOpenAI:
        """Build the SDK client on first use."""
        key = self._key()
        http_client: Any = self._http_client
        if http_client is None and use_aiohttp(self._transport):
            http_client = openai.DefaultAioHttpClient()
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=self._base_url,
            max_retries=self._max_retries,
            http_client=http_client,
        )
        self._client_loop = loop_token()
        return self._client

    # --- response -----------------------------------------------------------------

    def _read(self, content: bytes, status: int, request: ModelRequest) -> ModelResponse:
        """A `ModelResponse` from the JSON body, without building SDK models."""
        try:
            data = _wire.load_json(content, "body")
            return self._parse(data, fallback_model=self._spec.name, cap=request.max_output_tokens)
        except _wire.Malformed as exc:
            raise self._malformed(exc, status, exc.usage) from None

    async def _stream(
        self,
        client: openai.AsyncOpenAI,
        path: str,
        body: dict[str, Any],
        request: ModelRequest,
        options: Any,
    ) -> ModelResponse:
        """Stream one answer, handing each delta to `request.on_delta` as it arrives. A
        server that ignores `stream: true` and answers with one JSON body is read whole."""
        on_delta = request.on_delta
        assert on_delta is not None
        stream_cls = _responses.ResponsesStream if self._api == "responses" else _chat.ChatStream
        reader = stream_cls(fallback_model=self._spec.name, cap=request.max_output_tokens)
        events = await client.post(
            path,
            cast_to=object,
            body=body,
            options=options,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        http = events.response
        try:
            async with events:
                if _wire.is_json(http.headers.get("content-type")):
                    await _read_body(http)
                    result = _wire.replay(
                        self._read(http.content, http.status_code, request), on_delta
                    )
                else:
                    result = await _wire.fold(events, reader, on_delta)
        except _wire.Malformed as exc:
            raise self._malformed(exc, http.status_code, exc.usage or reader.usage) from None
        except ValueError as exc:  # an SSE event whose data is not JSON
            raise self._malformed(
                _wire.Malformed("stream event", f"not JSON ({exc})"), 200, reader.usage
            ) from None
        info = rate_limit_info(http.headers, http.headers.raw)
        return result if info is None else replace(result, rate_limit=info)

    def _malformed(self, exc: _wire.Malformed, status: int, usage: Usage | None) -> ModelError:
        api = "Responses" if self._api == "responses" else "chat completions"
        return _wire.bad_response(
            exc, model=self._name, base_url=self._base_url, api=api, status=status, usage=usage
        )

    def _errors(self) -> ErrorConverter:
        """The error converter for this model, told every key in use so none is shown."""
        keys = (
            self._client.api_key if self._client is not None else "",
            self._direct.api_key if self._direct is not None else "",
            self._api_key.value if self._api_key is not None else "",
            os.environ.get("OPENAI_API_KEY", ""),
        )
        return ErrorConverter(
            self._name, self._base_url, tuple(k for k in keys if k and k != NO_KEY)
        )


async def _read_body(response: httpx2.Response) -> None:
    """Read a whole body the SDK left unread, a transport failure raised as the SDK's."""
    try:
        await response.aread()
    except httpx2.TransportError as exc:
        raise openai.APIConnectionError(request=response.request) from exc
