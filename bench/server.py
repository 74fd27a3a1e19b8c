"""A loopback OpenAI-compatible chat completions simulator, run in its own process.

Standard library only (asyncio streams would cost more CPU than a bare `Protocol`), so the
test suite can start it without the `bench` extra:

    python bench/server.py --port 0          # prints "listening on http://127.0.0.1:PORT/v1"

Per request it parses the JSON body, decides the reply from the request alone (scripted
behaviour below), computes usage with OpenAI-style prompt caching, and sends the answer after
the simulated latency: time to first token + output tokens / the model's speed, or a fixed
delay set through `POST /sim/config`.

Scripted behaviour, keyed on the request (directives are `#sim:key=value` words in the last
user message; every framework forwards that text untouched):

- `#sim:call=NAME[,NAME2]`: when the last message is that user message and the request
  offers those tools, reply with tool calls whose arguments are a minimal instance of each
  tool's parameter schema; once tool results come back, answer normally.
- a `response_format` JSON schema: the answer is a minimal instance of that schema;
  `#sim:items=FIELD:N` makes every array under property FIELD hold N items (string fields
  named `id` inside them are numbered, so plan subtasks get unique ids).
- `#sim:fail=KIND[@MODEL]` plants a failure (only for MODEL when given): `500`, `429`,
  `context` (400 context_length_exceeded), `badjson` (invalid JSON output), `refusal`.
- `#sim:out=N` bills N output tokens (and the latency follows); default: the text's size.

Prompt caching follows OpenAI's documentation: a prompt of 1,024 tokens or more is cached by
prefix, and a later request reads from the cache the longest previously seen prefix of
1,024 tokens plus a whole number of 128-token steps. The prompt is rendered tools first,
then the output schema, then the messages in order; a token is four characters. A prefix
becomes readable once the request that wrote it has finished its prefill (its time to
first token), so a burst of identical prefixes misses until the first one lands.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = (
    "CACHE_MIN_TOKENS",
    "CACHE_STEP_TOKENS",
    "SimServer",
    "Simulator",
    "minimal_instance",
    "serve",
)

CACHE_MIN_TOKENS = 1024
"""Shortest prompt prefix OpenAI caches."""
CACHE_STEP_TOKENS = 128
"""Cached prefixes grow in steps of this many tokens beyond the minimum."""
CHARS_PER_TOKEN = 4

DEFAULT_SPEEDS = {"nano": 200.0, "mini": 180.0, "flagship": 80.0}
"""Output tokens per second by tier (nano and mini from the published figures)."""
DEFAULT_TTFT_MS = {"nano": 250.0, "mini": 350.0, "flagship": 600.0}
"""Time to first token by tier, in milliseconds."""

_DIRECTIVE = re.compile(r"#sim:([a-z_]+)=(\S+)")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    411: "Length Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def tier_of(model: str) -> str:
    """The tier a model name stands for: nano, mini, else flagship."""
    if "nano" in model:
        return "nano"
    if "mini" in model:
        return "mini"
    return "flagship"


# --- minimal instances of a JSON schema ---------------------------------------------------


def minimal_instance(
    schema: dict[str, Any],
    defs: dict[str, Any] | None = None,
    *,
    counts: dict[str, int] | None = None,
    key: str = "",
    index: int | None = None,
) -> Any:
    """The smallest value that validates against `schema` (strict-mode subset of JSON schema).

    Objects get every required property (every property, when `required` is absent but
    `additionalProperties` is false); arrays get `minItems` items, or `counts[key]` items
    for an array under property `key`; a string property named `id` inside the i-th item of
    such an array becomes `t{i}`.
    """
    if defs is None:
        defs = schema.get("$defs") or schema.get("definitions") or {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        return minimal_instance(target, defs, counts=counts, key=key, index=index)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and not schema.get("required"):
        return schema["default"]
    for combinator in ("anyOf", "oneOf"):
        branches = schema.get(combinator)
        if branches:
            concrete = [b for b in branches if b.get("type") != "null"] or branches
            return minimal_instance(concrete[0], defs, counts=counts, key=key, index=index)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return minimal_instance(merged, defs, counts=counts, key=key, index=index)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        required = schema.get("required")
        names = list(props) if required is None else [n for n in props if n in required]
        return {
            name: minimal_instance(props[name], defs, counts=counts, key=name, index=index)
            for name in names
        }
    if kind == "array":
        n = (counts or {}).get(key, schema.get("minItems", 0))
        items = schema.get("items") or {}
        return [minimal_instance(items, defs, counts=counts, key=key, index=i) for i in range(n)]
    if kind == "string":
        if key == "id" and index is not None:
            return f"t{index}"
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2025-01-01T00:00:00Z"
        if fmt == "date":
            return "2025-01-01"
        return "x" * max(1, schema.get("minLength", 1))
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    return None


# --- the simulator ------------------------------------------------------------------------


class Simulator:
    """Decides replies, usage and latency; knows nothing of sockets."""

    def __init__(self) -> None:
        self.mode = "model"
        self.fixed_ms = 0.0
        self.speeds = dict(DEFAULT_SPEEDS)
        self.ttft_ms = dict(DEFAULT_TTFT_MS)
        self._cache: dict[bytes, float] = {}
        self._ids = 0
        self.requests = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0

    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        """Apply `POST /sim/config`: mode (`model`, `fixed`, `zero`), fixed_ms, speeds, ttft_ms."""
        self.mode = config.get("mode", self.mode)
        self.fixed_ms = float(config.get("fixed_ms", self.fixed_ms))
        self.speeds.update(config.get("speeds", {}))
        self.ttft_ms.update(config.get("ttft_ms", {}))
        if config.get("reset"):
            self.reset()
        return self.stats()

    def reset(self) -> None:
        """Forget the prompt cache and the counters."""
        self._cache.clear()
        self.requests = self.prompt_tokens = self.cached_tokens = 0

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "fixed_ms": self.fixed_ms,
            "speeds": self.speeds,
            "ttft_ms": self.ttft_ms,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "cpu_s": time.process_time(),
        }

    def complete(self, req: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        """(status, JSON body, delay in seconds) for one chat completions request."""
        model = str(req.get("model", "sim"))
        messages: list[dict[str, Any]] = req.get("messages") or []
        directives = _directives(messages)
        tier = tier_of(model)
        kind, _, only = directives.get("fail", "").partition("@")
        if only and only not in (model, tier):
            kind = ""
        planted = _planted(kind)
        if planted is not None:
            return planted[0], planted[1], self._delay(tier, 1)
        tools = req.get("tools") or []
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        last_role = messages[-1].get("role") if messages else None
        wanted = directives.get("call")
        calls: list[dict[str, Any]] = []
        if wanted and last_role == "user" and tools:
            by_name = {t.get("function", {}).get("name"): t.get("function", {}) for t in tools}
            for name in wanted.split(","):
                fn = by_name.get(name)
                if fn is None:
                    continue
                self._ids += 1
                args = minimal_instance(fn.get("parameters") or {"type": "object"})
                calls.append(
                    {
                        "id": f"call_{self._ids}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                )
        if calls:
            message["tool_calls"] = calls
            finish = "tool_calls"
            text = json.dumps(calls)
        elif kind == "refusal":
            message["refusal"] = "I can't help with that."
            text = message["refusal"]
        else:
            text = self._answer(req, directives)
            if kind == "badjson":
                text = text[:-1] if text.endswith("}") else "{" + text
            message["content"] = text
        prompt, cached = self._prompt_usage(model, req, messages, tier)
        out = int(directives.get("out", 0)) or max(1, len(text) // CHARS_PER_TOKEN)
        self.requests += 1
        self._ids += 1
        body = {
            "id": f"chatcmpl-{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": out,
                "total_tokens": prompt + out,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "system_fingerprint": None,
        }
        return 200, body, self._delay(tier, out)

    def _answer(self, req: dict[str, Any], directives: dict[str, str]) -> str:
        fmt = req.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = fmt.get("json_schema", {}).get("schema") or {}
            counts: dict[str, int] = {}
            spec = directives.get("items")
            if spec:
                name, _, n = spec.partition(":")
                counts[name] = int(n or 1)
            return json.dumps(minimal_instance(schema, counts=counts), separators=(",", ":"))
        if isinstance(fmt, dict) and fmt.get("type") == "json_object":
            return "{}"
        return "ok"

    def _delay(self, tier: str, out: int) -> float:
        if self.mode == "zero":
            return 0.0
        if self.mode == "fixed":
            return self.fixed_ms / 1000
        return self.ttft_ms.get(tier, 0.0) / 1000 + out / self.speeds.get(tier, 100.0)

    def _prompt_usage(
        self, model: str, req: dict[str, Any], messages: list[dict[str, Any]], tier: str
    ) -> tuple[int, int]:
        """(prompt tokens, cached tokens) with OpenAI-style prefix caching."""
        parts: list[str] = []
        if req.get("tools"):
            parts.append(json.dumps(req["tools"], sort_keys=True))
        if req.get("response_format"):
            parts.append(json.dumps(req["response_format"], sort_keys=True))
        for m in messages:
            content = m.get("content")
            if not isinstance(content, str):
                content = json.dumps(content) if content is not None else ""
            parts.append(f"<{m.get('role')}>{content}")
            if m.get("tool_calls"):
                parts.append(json.dumps(m["tool_calls"], sort_keys=True))
        text = "\n".join(parts)
        tokens = -(-len(text) // CHARS_PER_TOKEN)
        self.prompt_tokens += tokens
        if tokens < CACHE_MIN_TOKENS:
            return tokens, 0
        now = time.monotonic()
        ready = now + (0.0 if self.mode == "zero" else self.ttft_ms.get(tier, 0.0) / 1000)
        if self.mode == "fixed":
            ready = now + min(self.fixed_ms / 1000, self.ttft_ms.get(tier, 0.0) / 1000)
        data = text.encode()
        h = hashlib.blake2b(model.encode(), digest_size=16)
        step = CACHE_STEP_TOKENS * CHARS_PER_TOKEN
        end = CACHE_MIN_TOKENS * CHARS_PER_TOKEN
        h.update(data[:end])
        cached = 0
        n = CACHE_MIN_TOKENS
        while True:
            digest = h.digest()
            seen = self._cache.get(digest)
            if seen is not None and seen <= now:
                cached = n
            elif seen is None or seen > ready:
                self._cache[digest] = ready
            if end + step > len(data):
                break
            h.update(data[end : end + step])
            end += step
            n += CACHE_STEP_TOKENS
        if len(self._cache) > 2_000_000:
            self._cache.clear()
        self.cached_tokens += cached
        return tokens, cached


def _directives(messages: list[dict[str, Any]]) -> dict[str, str]:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            if isinstance(content, str) and "#sim:" in content:
                return dict(_DIRECTIVE.findall(content))
            return {}
    return {}


def _planted(kind: str) -> tuple[int, dict[str, Any]] | None:
    if kind == "500":
        return 500, {"error": {"message": "planted server error", "type": "server_error"}}
    if kind == "429":
        return 429, {"error": {"message": "planted rate limit", "type": "rate_limit_exceeded"}}
    if kind == "context":
        return 400, {
            "error": {
                "message": "This model's maximum context length is 400000 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        }
    return None


# --- HTTP/1.1 over a bare asyncio Protocol ------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive client connection: Content-Length bodies, one request at a time."""

    def __init__(self, sim: Simulator, loop: asyncio.AbstractEventLoop) -> None:
        self.sim = sim
        self.loop = loop
        self.buf = bytearray()
        self.need: int | None = None
        self.head: tuple[str, str, bool] = ("", "", False)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
                del self.buf[: end + 4]
                method, path, *_ = lines[0].split(" ")
                length, close = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    lname = name.strip().lower()
                    if lname == "content-length":
                        length = int(value)
                    elif lname == "connection" and value.strip().lower() == "close":
                        close = True
                    elif lname == "transfer-encoding":
                        self._send(411, {"error": {"message": "send a Content-Length"}}, 0, True)
                        return
                self.head = (method, path, close)
                self.need = length
            if len(self.buf) < self.need:
                return
            body = bytes(self.buf[: self.need])
            del self.buf[: self.need]
            self.need = None
            method, path, close = self.head
            status, payload, delay = self._route(method, path, body)
            self._send(status, payload, delay, close)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any, float]:
        path = path.split("?", 1)[0]
        try:
            if method == "POST" and path.endswith("/chat/completions"):
                return self.sim.complete(json.loads(body))
            if method == "POST" and path.endswith("/sim/config"):
                return 200, self.sim.configure(json.loads(body or b"{}")), 0.0
            if method == "GET" and path.endswith("/sim/stats"):
                return 200, self.sim.stats(), 0.0
            if method == "GET" and path.endswith("/health"):
                return 200, {"ok": True}, 0.0
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return 400, {"error": {"message": f"bad request: {exc!r}"}}, 0.0
        return 404, {"error": {"message": f"no route {method} {path}"}}, 0.0

    def _send(self, status: int, payload: Any, delay: float, close: bool) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        ).encode()
        data = head + body
        if delay > 0:
            self.loop.call_later(delay, self._write, data, close)
        else:
            self._write(data, close)

    def _write(self, data: bytes, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        if close:
            t.close()


class SimServer:
    """Runs the simulator in a child process: `with SimServer() as sim: sim.base_url`."""

    def __init__(self, *, python: str | None = None) -> None:
        self._python = python or sys.executable
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, ending in /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> SimServer:
        self._proc = subprocess.Popen(
            [self._python, os.path.abspath(__file__), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = re.search(r":(\d+)/v1", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """A blocking control request (`/sim/config`, `/sim/stats`) from outside any loop."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(method, "/v1" + path, body=body)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def configure(self, **config: Any) -> dict[str, Any]:
        """Set latency mode (`model`, `fixed`, `zero`), fixed_ms, speeds, ttft_ms, reset."""
        result: dict[str, Any] = self.call("POST", "/sim/config", config)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/sim/stats")
        return result

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def serve(
    host: str = "127.0.0.1", port: int = 0, *, ready: Callable[[int], None] | None = None
) -> None:
    """Serve until cancelled; `ready(port)` is called once the socket listens."""
    loop = asyncio.get_running_loop()
    sim = Simulator()
    server = await loop.create_server(
        lambda: _Connection(sim, loop), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()


def _raise_fd_limit() -> None:
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    _raise_fd_limit()
    import gc

    gc.freeze()

    def ready(port: int) -> None:
        print(f"listening on http://{args.host}:{port}/v1", flush=True)

    loop = asyncio.new_event_loop()
    task = loop.create_task(serve(args.host, args.port, ready=ready))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
