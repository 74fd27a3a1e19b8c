"""`Emulator`: answers `/v1/chat/completions` and `/v1/responses` as OpenAI would.

Every request is checked first (`_validate`): a body the real API would reject gets the
same kind of 400, so a test against the emulator fails where production would. Valid
requests get the next scripted step: a `Reply` (rendered for the API called, streamed
or not), an `ApiError`, a raw `httpx2.Response`, an exception (raised in the transport),
or a function of the `Seen` request returning one of those.

Use it in-process (`transport()`, an `httpx2.MockTransport`) or as a real HTTP server on
127.0.0.1 (`serve()`), which the CLI and the aiohttp transport need. `stream_fault` makes
it answer streamed requests as a broken server would (see `StreamFault`).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import httpx2

from openai_emulator._render import (
    Reply,
    Tokens,
    chat_body,
    chat_chunks,
    response_body,
    response_events,
)
from openai_emulator._validate import ApiError, check_chat, check_responses

__all__ = ("Answer", "Emulator", "Seen", "Step", "StreamFault")

REASONING_MODELS = ("gpt-5", "o1", "o3", "o4")
CACHE_MIN = 1024
"""Prompt caching guide: prompts of 1024 tokens or more are cached, hits count in 128s."""
CACHE_STEP = 128


@dataclass(frozen=True, slots=True)
class Seen:
    """One request the emulator accepted."""

    api: Literal["chat", "responses"]
    url: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def system(self) -> str:
        """The instructions: `instructions`, else the first system/developer message."""
        if self.api == "responses" and self.body.get("instructions"):
            return str(self.body["instructions"])
        key = "messages" if self.api == "chat" else "input"
        for m in self.body.get(key) or []:
            if m.get("role") in ("system", "developer"):
                return str(m["content"])
        return ""

    @property
    def tool_output(self) -> str | None:
        """The last item's tool result, when the request ends with one."""
        key = "messages" if self.api == "chat" else "input"
        items = self.body.get(key) or []
        if not items:
            return None
        last = items[-1]
        if last.get("role") == "tool":
            return str(last["content"])
        if last.get("type") == "function_call_output":
            return str(last["output"])
        return None

    @property
    def effort(self) -> str | None:
        if self.api == "chat":
            return self.body.get("reasoning_effort")
        effort = (self.body.get("reasoning") or {}).get("effort")
        return None if effort is None else str(effort)


Step: TypeAlias = "Reply | ApiError | httpx2.Response | BaseException | Callable[[Seen], Step]"

StreamFault: TypeAlias = Literal["ignored", "empty", "cut"]
"""How a broken server answers `stream: true`: "ignored" sends the plain JSON body (as
servers without streaming do), "empty" an event stream with no events (chat: only
`[DONE]`), "cut" the events up to the end and no end (chat: no chunk with a
`finish_reason`, no `[DONE]`; Responses: no terminal `response.completed`)."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[bytes] | None = None
    """SSE frames, for a streamed answer."""


@dataclass
class Emulator:
    """A scripted OpenAI endpoint that validates every request as the real API does."""

    script: Sequence[Step] | Callable[[Seen], Step] = ()
    requests: list[Seen] = field(default_factory=list)
    rejected: list[ApiError] = field(default_factory=list)
    """Requests answered with a 400 by the validation (a test usually wants none)."""
    issued: set[str] = field(default_factory=set)
    stream_fault: StreamFault | None = None
    """Answer streamed requests as a broken server would; None: as the API does."""
    _position: int = 0
    _prefixes: set[str] = field(default_factory=set)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [s.body for s in self.requests]

    def handle(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> Answer:
        """One HTTP exchange; raises only a scripted exception."""
        with self._lock:
            try:
                return self._handle(method, url, {k.lower(): v for k, v in headers.items()}, raw)
            except ApiError as exc:
                return _json(exc.status, exc.body())

    def _handle(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> Answer:
        path = urlsplit(url).path
        api: Literal["chat", "responses"]
        if method == "POST" and path.endswith("/chat/completions"):
            api = "chat"
        elif method == "POST" and path.endswith("/responses"):
            api = "responses"
        else:
            raise ApiError(f"Invalid URL ({method} {path})", status=404)
        if not headers.get("authorization", "").startswith("Bearer "):
            raise ApiError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                status=401,
            )
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError("We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise ApiError("We could not parse the JSON body of your request.")
        try:
            if api == "chat":
                check_chat(body)
            else:
                check_responses(body, self.issued)
        except ApiError as exc:
            self.rejected.append(exc)
            raise
        seen = Seen(api=api, url=url, body=body, headers=headers)
        self.requests.append(seen)
        step = self._next(seen)
        while callable(step) and not isinstance(step, BaseException | httpx2.Response):
            step = step(seen)
        if isinstance(step, BaseException):
            raise step  # ApiError is answered; anything else reaches the transport
        if isinstance(step, httpx2.Response):
            step.read()
            return Answer(step.status_code, dict(step.headers), step.content)
        return self._render(step, seen, len(raw))

    def _next(self, seen: Seen) -> Step:
        if callable(self.script):
            return self.script
        if self._position >= len(self.script):
            raise AssertionError(f"emulator script exhausted at request {len(self.requests)}")
        step = self.script[self._position]
        self._position += 1
        return step

    def _usage(self, reply: Reply, seen: Seen, size: int) -> Tokens:
        if reply.usage is not None:
            return reply.usage
        body = seen.body
        prompt = max(1, size // 4)
        prefix = json.dumps(
            [seen.system, body.get("tools"), body.get("prompt_cache_key"), body.get("model")]
        )
        cached = 0
        if prefix in self._prefixes and prompt >= CACHE_MIN:
            cached = min(prompt, max(CACHE_MIN, len(prefix) // 4)) // CACHE_STEP * CACHE_STEP
        self._prefixes.add(prefix)
        thinking = 0 if seen.effort in (None, "none") else 64
        text = (reply.text or "") + "".join(c.text() for c in reply.calls)
        return Tokens(
            input=prompt, cached=cached, output=len(text) // 4 + 1 + thinking, reasoning=thinking
        )

    def _render(self, reply: Reply, seen: Seen, size: int) -> Answer:
        usage = self._usage(reply, seen, size)
        model = str(seen.body["model"])
        ids = [c.id or f"call_emu{next(self._ids)}" for c in reply.calls]
        stream = seen.stream and self.stream_fault != "ignored"
        if seen.api == "chat":
            if not stream:
                return _json(200, chat_body(reply, model, usage, ids))
            with_usage = bool((seen.body.get("stream_options") or {}).get("include_usage"))
            chunks = chat_chunks(reply, model, usage if with_usage else None, ids)
            return _sse(_chat_frames(chunks, self.stream_fault))
        reasoning = None
        wants = "reasoning.encrypted_content" in (seen.body.get("include") or [])
        if wants and model.startswith(REASONING_MODELS) and seen.effort != "none":
            n = next(self._ids)
            reasoning = (f"rs_emu{n}", f"gAAAA-emulated-{n}")
            self.issued.add(reasoning[1])
        final = response_body(reply, model, usage, ids, reasoning)
        if not stream:
            return _json(200, final)
        return _sse(_response_frames(response_events(final), self.stream_fault))

    # --- transports -------------------------------------------------------------------

    def transport(self) -> httpx2.MockTransport:
        """An in-process transport for `httpx2.AsyncClient(transport=...)`."""

        def answer(request: httpx2.Request) -> httpx2.Response:
            got = self.handle(
                request.method, str(request.url), dict(request.headers), request.read()
            )
            content = b"".join(got.events) if got.events is not None else got.body
            return httpx2.Response(got.status, headers=got.headers, content=content)

        return httpx2.MockTransport(answer)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on 127.0.0.1 (an ephemeral port) in a thread; yields the `/v1` base URL."""
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    got = emulator.handle("POST", self.path, dict(self.headers), raw)
                except Exception:  # a scripted transport failure: drop the connection
                    self.close_connection = True
                    return
                self.send_response(got.status)
                for key, value in got.headers.items():
                    if key.lower() not in ("content-length", "connection"):
                        self.send_header(key, value)
                if got.events is None:
                    self.send_header("Content-Length", str(len(got.body)))
                    self.end_headers()
                    self.wfile.write(got.body)
                    return
                self.send_header("Connection", "close")
                self.end_headers()
                for frame in got.events:
                    self.wfile.write(frame)
                    self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join()


_DONE = b"data: [DONE]\n\n"


def _chat_frames(chunks: list[dict[str, Any]], fault: StreamFault | None) -> list[bytes]:
    """The SSE frames of a chat stream, broken as `fault` says."""
    if fault == "empty":
        return [_DONE]
    if fault == "cut":  # everything before the chunk with the finish_reason
        end = next(
            i for i, c in enumerate(chunks) if any(ch["finish_reason"] for ch in c["choices"])
        )
        chunks = chunks[:end]
    frames = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks]
    return frames if fault == "cut" else [*frames, _DONE]


def _response_frames(events: list[dict[str, Any]], fault: StreamFault | None) -> list[bytes]:
    """The SSE frames of a Responses stream, broken as `fault` says."""
    if fault == "empty":
        events = []
    elif fault == "cut":  # no terminal event
        events = events[:-1]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def _json(status: int, body: dict[str, Any]) -> Answer:
    return Answer(
        status,
        {"content-type": "application/json", "x-request-id": "req_emu"},
        json.dumps(body).encode(),
    )


def _sse(frames: list[bytes]) -> Answer:
    return Answer(
        200, {"content-type": "text/event-stream", "x-request-id": "req_emu"}, events=frames
    )
