"""A fault-injecting chat completions server on 127.0.0.1, shared by the tests and the bench.

Normal answers come from `bench.server.Simulator` (minimal schema instances, `#sim:`
directives, OpenAI-style usage); on top of it, by schedule or by probability, a request
gets one of these faults (`FAULTS`):

    429          Too Many Requests, with Retry-After / retry-after-ms and x-ratelimit-* headers
    500, 503     server errors
    slow         the answer comes after `slow` seconds (longer than the client's timeout)
    drop         headers and half the body, then the connection is closed
    badjson      a 200 whose body is not JSON (usage unreadable, but billed)
    bad_args     a tool call whose arguments are not valid JSON (needs tools in the request)
    unknown_tool a tool call to a tool the request did not offer (needs tools)
    schema       structured output that fails the request's schema (needs response_format)

It also enforces requests- and tokens-per-window limits as token buckets, the way OpenAI
describes its own (capacity = the limit, refilled continuously over `window` seconds; a
request weighs its prompt characters / 4 plus its `max_completion_tokens`, corrected to
the real usage when it is answered) and answers 429 past them. A `storm` answers every
request with 429 for a while.

Calls are counted per subtask, read from the `x-tiered-subtask` header that OpenAIModel
sends from `ModelRequest.metadata["subtask_id"]` (else the body's `metadata.subtask_id`).
`reported` is the usage sent in well-formed 200 bodies (`reported_by_model` the same per
model, to price it), `billed` everything generated (dropped, slow and unreadable answers
included).

    with FaultServer(FaultConfig(rpm=60, window=6.0)) as server:
        model = OpenAIModel("gpt-5.4-nano", base_url=server.base_url, api_key="k")
        ...
        server.stats()["enforced_429"]

Run standalone for a subprocess (`python bench/faults.py --port 0 --config JSON`); its
counters are at GET /v1/faults/stats, its config changes at POST /v1/faults/config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

try:
    from bench.server import Simulator
except ImportError:  # run as a script: bench/ itself is on sys.path
    from server import Simulator  # type: ignore[no-redef,import-not-found]

__all__ = ("FAULTS", "FaultConfig", "FaultServer")

FAULTS = ("429", "500", "503", "slow", "drop", "badjson", "bad_args", "unknown_tool", "schema")
_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}
_REASONS[503] = "Service Unavailable"


@dataclass
class FaultConfig:
    """What the server does; every field can be changed while it runs (`configure`)."""

    rpm: int | None = None
    """Requests per `window` (a token bucket); past it, 429."""
    tpm: int | None = None
    """Tokens per `window`; past it, 429."""
    window: float = 60.0
    faults: dict[str, float] = field(default_factory=dict)
    """Fault kind -> probability per request."""
    schedule: dict[int, str] = field(default_factory=dict)
    """Request number (1-based, over all requests) -> fault kind."""
    per_subtask: dict[str, list[str]] = field(default_factory=dict)
    """Subtask id -> fault kinds for its first, second, ... calls ("" for none)."""
    storm: float = 0.0
    """Seconds from now (set at `configure`) during which every request gets a 429."""
    retry_after: float | None = 1.0
    """Seconds sent with planted and storm 429s; None sends no Retry-After."""
    latency: float = 0.0
    """Seconds every normal answer takes."""
    slow: float = 5.0
    """Seconds a `slow` answer takes."""
    seed: int = 0


def _reset_header(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 else f"{seconds:.3f}s"


class _Bucket:
    def __init__(self, capacity: float, window: float) -> None:
        self.capacity, self.rate = capacity, capacity / window
        self.level, self.stamp = capacity, time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        self.refill()
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def headers(self, kind: str) -> dict[str, str]:
        self.refill()
        return {
            f"x-ratelimit-limit-{kind}": str(int(self.capacity)),
            f"x-ratelimit-remaining-{kind}": str(max(int(self.level), 0)),
            f"x-ratelimit-reset-{kind}": _reset_header((self.capacity - self.level) / self.rate),
        }


class _State:
    """The config, the buckets and the counters; touched only under `lock`."""

    def __init__(self, config: FaultConfig) -> None:
        self.lock = threading.Lock()
        self.sim = Simulator()
        self.sim.configure({"mode": "zero"})
        self.started = time.monotonic()
        self.apply(config)
        self.reset()

    def apply(self, config: FaultConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.storm_until = time.monotonic() + config.storm if config.storm else 0.0
        self.requests_bucket = _Bucket(config.rpm, config.window) if config.rpm else None
        self.tokens_bucket = _Bucket(config.tpm, config.window) if config.tpm else None

    def reset(self) -> None:
        self.n = 0
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.enforced = 0
        self.reported: Counter[str] = Counter()
        self.reported_by_model: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.billed: Counter[str] = Counter()
        self.times: dict[str, list[float]] = defaultdict(list)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.n,
            "calls": dict(self.calls),
            "faults": dict(self.faults),
            "enforced_429": self.enforced,
            "reported": dict(self.reported),
            "reported_by_model": {m: dict(c) for m, c in self.reported_by_model.items()},
            "billed": dict(self.billed),
            "times": {k: list(v) for k, v in self.times.items()},
            "config": asdict(self.config),
        }

    def rate_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.requests_bucket is not None:
            headers.update(self.requests_bucket.headers("requests"))
        if self.tokens_bucket is not None:
            headers.update(self.tokens_bucket.headers("tokens"))
        return headers

    def pick(self, subtask: str) -> str:
        """The fault for this request ("" for none)."""
        c = self.config
        if self.n in c.schedule:
            return c.schedule[self.n]
        planned = c.per_subtask.get(subtask)
        if planned is not None:
            i = self.calls[subtask] - 1
            return planned[i] if i < len(planned) else ""
        roll = self.random.random()
        for kind, p in sorted(c.faults.items()):
            if roll < p:
                return kind
            roll -= p
        return ""

    def handle(self, req: dict[str, Any], subtask: str) -> tuple[int, dict[str, str], Any, str]:
        """(status, headers, body or raw bytes, fault) for one chat completions request."""
        self.n += 1
        self.calls[subtask] += 1
        self.times[subtask].append(time.monotonic() - self.started)
        weight = _weight(req)
        if time.monotonic() < self.storm_until:
            self.faults["storm"] += 1
            return 429, self.rate_headers() | self._retry(), _error("storm"), ""
        for bucket, amount in ((self.requests_bucket, 1.0), (self.tokens_bucket, weight)):
            wait = bucket.wait_for(amount) if bucket is not None else 0.0
            if wait > 0:
                self.enforced += 1
                retry = {"retry-after-ms": str(math.ceil(wait * 1000))}
                retry["retry-after"] = str(math.ceil(wait))
                return 429, self.rate_headers() | retry, _error("rate limit reached"), ""
        if self.requests_bucket is not None:
            self.requests_bucket.level -= 1
        if self.tokens_bucket is not None:
            self.tokens_bucket.level -= weight
        fault = self.pick(subtask)
        if fault:
            self.faults[fault] += 1
        if fault in ("429", "500", "503"):
            status = int(fault)
            extra = self._retry() if status == 429 else {}
            return status, self.rate_headers() | extra, _error(f"planted {fault}"), fault
        status, body, _delay = self.sim.complete(req)
        if status == 200:
            body = _corrupt(body, req, fault)
            usage = body["usage"]
            used = usage["prompt_tokens"] + usage["completion_tokens"]
            if self.tokens_bucket is not None:
                self.tokens_bucket.level = min(
                    self.tokens_bucket.capacity, self.tokens_bucket.level + weight - used
                )
            for key in ("prompt_tokens", "completion_tokens"):
                self.billed[key] += usage[key]
                if fault not in ("drop", "badjson", "slow"):
                    self.reported[key] += usage[key]
                    self.reported_by_model[str(req.get("model"))][key] += usage[key]
            self.billed["requests"] += 1
            if fault not in ("drop", "badjson", "slow"):
                self.reported["requests"] += 1
                self.reported_by_model[str(req.get("model"))]["requests"] += 1
        return status, self.rate_headers(), body, fault

    def _retry(self) -> dict[str, str]:
        ra = self.config.retry_after
        if ra is None:
            return {}
        return {"retry-after-ms": str(int(ra * 1000)), "retry-after": str(math.ceil(ra))}


def _weight(req: dict[str, Any]) -> float:
    chars = sum(len(str(m.get("content") or "")) for m in req.get("messages") or [])
    return chars / 4 + float(req.get("max_completion_tokens") or 4096)


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}}


def _corrupt(body: dict[str, Any], req: dict[str, Any], fault: str) -> dict[str, Any]:
    """The body with a model-level fault planted in it (tool calls, schema)."""
    tools = req.get("tools") or []
    message = body["choices"][0]["message"]
    if fault in ("bad_args", "unknown_tool") and tools:
        name = tools[0].get("function", {}).get("name", "tool")
        call = {
            "id": f"call_fault_{body['id']}",
            "type": "function",
            "function": {
                "name": name if fault == "bad_args" else "no_such_tool",
                "arguments": '{"unterminated": ' if fault == "bad_args" else "{}",
            },
        }
        message.update(content=None, tool_calls=[call])
        body["choices"][0]["finish_reason"] = "tool_calls"
    elif fault == "schema" and req.get("response_format"):
        message.update(content=json.dumps({"not_in_schema": True}), tool_calls=None)
    return body


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with Content-Length bodies."""

    def __init__(self, state: _State, loop: asyncio.AbstractEventLoop) -> None:
        self.state, self.loop = state, loop
        self.buf = bytearray()
        self.head: tuple[str, str, dict[str, str]] | None = None
        self.need = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
                del self.buf[: end + 4]
                method, path, *_ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                self.head = (method, path.split("?", 1)[0], headers)
                self.need = int(headers.get("content-length", "0"))
            if len(self.buf) < self.need:
                return
            body = bytes(self.buf[: self.need])
            del self.buf[: self.need]
            method, path, headers = self.head
            self.head = None
            self._route(method, path, headers, body)

    def _route(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> None:
        state = self.state
        if method == "GET" and path.endswith("/faults/stats"):
            with state.lock:
                self._send(200, {}, state.stats())
            return
        if method == "POST" and path.endswith("/faults/config"):
            with state.lock:
                changes = json.loads(raw or b"{}")
                if changes.pop("reset", False):
                    state.reset()
                state.apply(_merge(state.config, changes))
                self._send(200, {}, state.stats())
            return
        if not (method == "POST" and path.endswith("/chat/completions")):
            self._send(404, {}, {"error": {"message": f"no route {method} {path}"}})
            return
        req = json.loads(raw)
        subtask = headers.get("x-tiered-subtask") or str(
            (req.get("metadata") or {}).get("subtask_id", "")
        )
        with state.lock:
            status, extra, body, fault = state.handle(req, subtask)
            delay = state.config.slow if fault == "slow" else state.config.latency
        payload = json.dumps(body, separators=(",", ":")).encode()
        if fault == "badjson":
            payload = b'{"id": "chatcmpl-broken", "choices": [{"mess'
        self._send(status, extra, payload, delay=delay if status == 200 else 0.0, drop=fault)

    def _send(
        self,
        status: int,
        headers: dict[str, str],
        body: Any,
        *,
        delay: float = 0.0,
        drop: str = "",
    ) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        length = len(payload)
        if drop == "drop":
            payload = payload[: length // 2]
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        head += "content-type: application/json\r\n"
        head += f"content-length: {length}\r\nconnection: keep-alive\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        data = head.encode() + payload
        if delay > 0:
            self.loop.call_later(delay, self._write, data, drop == "drop")
        else:
            self._write(data, drop == "drop")

    def _write(self, data: bytes, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        if close:
            t.close()


def _merge(config: FaultConfig, changes: dict[str, Any]) -> FaultConfig:
    known = {f.name for f in fields(FaultConfig)}
    unknown = set(changes) - known
    if unknown:
        raise ValueError(f"unknown fault config keys: {sorted(unknown)}")
    values = asdict(config) | changes
    values["schedule"] = {int(k): v for k, v in values["schedule"].items()}
    return FaultConfig(**values)


class FaultServer:
    """Runs the fault server on its own thread and event loop: `with FaultServer(cfg) as s:`."""

    def __init__(self, config: FaultConfig | None = None, *, port: int = 0) -> None:
        self._state = _State(config or FaultConfig())
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, ending in /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultServer:
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                loop.create_server(
                    lambda: _Connection(self._state, loop), "127.0.0.1", self._port, backlog=4096
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def stats(self) -> dict[str, Any]:
        """Counters: requests, calls per subtask, faults, enforced_429, reported, billed."""
        with self._state.lock:
            return self._state.stats()

    def configure(self, *, reset: bool = False, **changes: Any) -> None:
        """Change the config while running; `reset` zeroes the counters."""
        with self._state.lock:
            if reset:
                self._state.reset()
            self._state.apply(_merge(self._state.config, changes))

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="FaultConfig fields as JSON")
    args = parser.parse_args(argv)
    server = FaultServer(_merge(FaultConfig(), json.loads(args.config)), port=args.port).start()
    print(f"listening on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
