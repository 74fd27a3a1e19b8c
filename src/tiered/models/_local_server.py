"""The llama.cpp server behind `LocalModel`: threads, slots and the prompt cache.

One server runs per weights file per process, started on the first request. Each
request goes to the idle slot that already holds most of its prompt, so an agent's
later turns and later calls reuse what it already read; a slot's state is saved under
~/.cache/tiered/slots, keyed by the stable prefix (the system turn: instructions, tools,
output shape), and restored into a slot that does not hold that prefix, so a second run
does not re-read it either. Servers
in one process never oversubscribe the cores (`_local_cores`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from threading import Event
from typing import Any, TypeAlias

import anyio
import anyio.lowlevel

from tiered._errors import LocalModelUnavailable, ProviderError, UserError
from tiered._logging import get_logger
from tiered.models._local_cores import cores, default_threads
from tiered.models._local_replies import LOOP_CHARS, looping
from tiered.models._local_slots import SlotTable, prepare_dir, runtime, wait_for
from tiered.models._weights import LocalWeights, ensure_weights

__all__ = ("OnPiece", "Server", "ServerConfig", "server_for", "slots_cache_dir")

OnPiece: TypeAlias = Callable[[str], None] | None
"""Called in the server's thread with each piece of generated text (None: nobody asked)."""

_LLAMA_LOG_QUIET = 1  # llama.cpp verbosity: 1 keeps errors only; 3 is its chatty default
_LLAMA_LOG_VERBOSE = 3
_SAVE_MIN_NEW_TOKENS = 32
"""Save a slot only when a request read at least this many new prompt tokens."""
_PREFIX_WAIT_S = 120.0
"""How long a request waits for another to read their shared prefix before reading it."""


def slots_cache_dir() -> Path:
    """Where saved prompt-cache slots live: `$TIERED_SLOTS_DIR`, else ~/.cache/tiered/slots.

    An empty `TIERED_SLOTS_DIR` turns saving and restoring off.
    """
    env = os.environ.get("TIERED_SLOTS_DIR")
    if env is not None:
        return Path(env)
    return Path.home() / ".cache" / "tiered" / "slots"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings one weights file's server starts with; every user of it must agree."""

    n_ctx: int
    """Tokens of context per slot."""
    threads: int | None
    """None: decided when the server starts."""
    parallel: int
    """Slots: prompt prefixes kept warm, and requests decoded at once."""
    verbose: bool


class Server:
    """One llama.cpp server for one weights file, shared by every `LocalModel` using it."""

    def __init__(self, weights: LocalWeights, config: ServerConfig) -> None:
        self.weights = weights
        self.config = config
        self.threads = config.threads
        """Decided in `start` (off the event loop)."""
        self._native: Any = None
        self._key = ""
        self._start_lock = threading.Lock()
        self._slots = SlotTable(config.parallel)
        self._slot_dir: Path | None = None
        self._limiters: weakref.WeakKeyDictionary[object, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )
        self._pinned_limiters: dict[object, anyio.CapacityLimiter] = {}
        """For event loops whose token takes no weak reference."""
        self._limiters_lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether llama.cpp has loaded the weights."""
        return self._native is not None

    def start(self) -> None:
        """Assemble and verify the weights, then load them; a no-op once started."""
        with self._start_lock:
            if self._native is not None:
                return
            path = ensure_weights(self.weights)
            if self.threads is None:
                self.threads = default_threads()
            self._native = self._load(path, self.threads)

    def _load(self, path: Path, threads: int) -> Any:
        try:
            import xllamacpp
        except ImportError as exc:
            raise LocalModelUnavailable(
                "the embedded local model needs the `local` extra: pip install 'tiered[local]'"
            ) from exc
        cfg = self.config
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = [self.weights.name]  # a list: a plain str becomes a set of letters
        params.n_ctx = cfg.n_ctx * cfg.parallel  # split evenly: every slot gets n_ctx
        params.n_parallel = cfg.parallel
        params.ctx_shift = False  # a full context ends the generation, never drops the prompt
        params.cache_idle_slots = False  # a slot keeps its prefix until we give it another
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = _LLAMA_LOG_VERBOSE if cfg.verbose else _LLAMA_LOG_QUIET
        self._slot_dir = prepare_dir(slots_cache_dir())
        if self._slot_dir is not None:
            params.slot_save_path = f"{self._slot_dir}{os.sep}"  # llama.cpp appends the name
        # It also listens on loopback HTTP (slot save/restore); a random key keeps others out.
        self._key = uuid.uuid4().hex
        params.api_keys = [self._key]
        started = time.perf_counter()
        try:
            native = xllamacpp.Server(params)
        except (RuntimeError, ValueError, OSError) as exc:
            raise LocalModelUnavailable(
                f"llama.cpp could not start the local model {self.weights.name!r} from {path} "
                f"({exc}): check free memory (about {self.weights.size * 2 // 2**30 + 1} GiB), "
                "lower n_ctx, or pass verbose=True to LocalModel to see llama.cpp's log"
            ) from exc
        get_logger().info(
            "local_model.started",
            model=self.weights.name,
            threads=threads,
            n_ctx=cfg.n_ctx,
            parallel=cfg.parallel,
            load_s=round(time.perf_counter() - started, 2),
        )
        return native

    def limiter(self) -> anyio.CapacityLimiter:
        """This event loop's limiter, one token per server slot."""
        key = anyio.lowlevel.current_token().native_token
        with self._limiters_lock:
            try:
                limiter = self._limiters.get(key)
                store: Any = self._limiters
            except TypeError:
                limiter = self._pinned_limiters.get(key)
                store = self._pinned_limiters
            if limiter is None:
                limiter = store[key] = anyio.CapacityLimiter(self.config.parallel)
            return limiter

    # --- slots ------------------------------------------------------------------------

    def _take_slot(self, prompt: str, prefix: str) -> tuple[int, str, bool]:
        """(slot, saved-state file name, whether the slot lacks the prefix) for a request."""
        index, key, lacks = self._slots.take(prompt, prefix)
        return index, self._filename(key), lacks

    def _release(self, index: int) -> None:
        self._slots.release(index)

    def _filename(self, key: str) -> str:
        """Saved state is only valid for these weights, this context size and runtime."""
        return f"{self.weights.sha256[:12]}-c{self.config.n_ctx}-r{runtime()}-{key}.bin"

    def _slot_action(self, slot: int, action: str, filename: str) -> dict[str, Any] | None:
        """Save or restore one slot's state through the server's /slots endpoint."""
        if self._slot_dir is None:
            return None
        address = str(self._native.listening_address).rstrip("/")
        request = urllib.request.Request(
            f"{address}/slots/{slot}?action={action}",
            data=json.dumps({"filename": filename}).encode(),
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except (OSError, ValueError) as exc:  # a cache miss costs time, never the request
            get_logger().debug(
                "local_model.slot_failed", model=self.weights.name, action=action, error=str(exc)
            )
            return None

    # --- requests ---------------------------------------------------------------------

    def complete(
        self, body: dict[str, Any], prefix: str, cancel: Event, on_piece: OnPiece = None
    ) -> dict[str, Any]:
        """Blocking streamed completion on the slot for `prefix`; stops once `cancel` is set.

        Streaming is what makes a cancelled request stop at its next token instead of
        holding a slot until `max_tokens`; `on_piece` gets each piece of text as it comes.
        """
        self.start()
        slot, filename, restore = self._take_slot(str(body["prompt"]), prefix)
        try:
            read: Mapping[str, Any] = {}
            if restore:
                restore, read = self._read_prefix_once(slot, filename, prefix, cancel)
            result = self._complete_on(slot, filename, restore, body, cancel, on_piece)
            _count_read(result, read)
            return result
        finally:
            self._release(slot)

    def _read_prefix_once(
        self, slot: int, filename: str, prefix: str, cancel: Event
    ) -> tuple[bool, Mapping[str, Any]]:
        """(whether the slot should restore `filename`, the timings of a prefix read here).

        A cold prefix is read only once: the first request on a prefix with no saved
        state reads just the prefix into its slot and saves it; requests with the same
        prefix meanwhile wait, then restore it, instead of reading the same tokens in
        their own slots side by side.
        """
        if self._slot_dir is None or (self._slot_dir / filename).is_file():
            return True, {}
        read = self._slots.join_read(filename)
        if not read.lead:
            wait_for(read, cancel, _PREFIX_WAIT_S)
            return True, {}
        try:
            with cores.use(id(self), self.threads or 1):
                if cancel.is_set():
                    return True, {}
                body = {"prompt": prefix, "max_tokens": 1, "temperature": 0.0, "id_slot": slot}
                result = self._stream({**body, "cache_prompt": True}, cancel, None)
                if "error" in result or cancel.is_set():
                    return False, {}
                self._slot_action(slot, "save", filename)
                return False, result.get("timings") or {}  # the slot holds the prefix now
        finally:
            self._slots.end_read(filename, read)

    def _complete_on(
        self,
        slot: int,
        filename: str,
        restore: bool,
        body: dict[str, Any],
        cancel: Event,
        on: OnPiece,
    ) -> dict[str, Any]:
        with cores.use(id(self), self.threads or 1):
            if cancel.is_set():
                return {"text": "", "finish_reason": "cancelled"}
            restored = (
                restore
                and self._slot_dir is not None
                and (self._slot_dir / filename).is_file()
                and self._slot_action(slot, "restore", filename) is not None
            )
            result = self._stream({**body, "id_slot": slot}, cancel, on)
            timings = result.get("timings") or {}
            if (
                "error" not in result
                and not cancel.is_set()
                and int(timings.get("prompt_n", 0)) >= _SAVE_MIN_NEW_TOKENS
            ):
                self._slot_action(slot, "save", filename)
        result["slot"] = slot
        result["restored"] = bool(restored)
        return result

    def _stream(self, body: dict[str, Any], cancel: Event, on_piece: OnPiece) -> dict[str, Any]:
        pieces: list[str] = []
        result: dict[str, Any] = {}
        scored: list[tuple[int, str, float]] = []  # (offset in the text, token, logprob)
        offset = [0]
        tail = [""]  # the latest text, for a runaway repetition

        def on_chunk(chunk: Any) -> bool:
            if isinstance(chunk, str | bytes):
                try:
                    chunk = json.loads(chunk)
                except ValueError:
                    return cancel.is_set()
            if not isinstance(chunk, dict):
                return cancel.is_set()
            if "error" in chunk:
                result["error"] = chunk["error"]
            for choice in chunk.get("choices") or ():
                piece = choice.get("text") or ""
                pieces.append(piece)
                _collect(scored, offset[0], choice.get("logprobs"))
                offset[0] += len(piece)
                if piece:
                    tail[0] = (tail[0] + piece)[-LOOP_CHARS:]
                    if looping(tail[0]):
                        # stop now, not at the output cap; a stopped stream reports no
                        # usage, so its output is counted here: a piece is a token
                        result["runaway"] = True
                        tokens = sum(1 for p in pieces if p)
                        result.setdefault("usage", {"completion_tokens": tokens})
                        return True
                    if on_piece is not None:
                        on_piece(piece)
                if choice.get("finish_reason"):
                    result["finish_reason"] = choice["finish_reason"]
            for key in ("usage", "timings"):
                if key in chunk:
                    result[key] = chunk[key]
            return cancel.is_set()

        try:
            returned = self._native.handle_completions({**body, "stream": True}, on_chunk)
        except Exception as exc:  # the runtime's own failure, converted at this boundary
            raise ProviderError(
                f"{self.weights.name}: the local llama.cpp server failed: {exc!r}",
                model=self.weights.name,
            ) from exc
        if isinstance(returned, dict) and "error" in returned:
            result["error"] = returned["error"]
        result["text"] = "".join(pieces)
        if scored:
            result["token_logprobs"] = scored
        return result


def _collect(tokens: list[tuple[int, str, float]], offset: int, logprobs: Any) -> None:
    """Append one chunk's tokens with their log probabilities (llama.cpp's OpenAI-shaped
    `logprobs.content`), each at `offset`, where the chunk's text starts; the reply's
    confidence is read from them once its shape is known (`_local_replies.confidence`)."""
    if not isinstance(logprobs, dict):
        return
    for entry in logprobs.get("content") or ():
        token, value = entry.get("token"), entry.get("logprob")
        if isinstance(value, int | float) and isinstance(token, str):
            tokens.append((offset, token, float(value)))


def _count_read(result: dict[str, Any], read: Mapping[str, Any]) -> None:
    """Book the prefix read ahead of a request as that request's own (uncached) reading.

    The request then finds the prefix in its slot, but it was read for it, not reused.
    """
    timings = result.get("timings")
    n = int(read.get("prompt_n", 0))
    if not n or not isinstance(timings, dict):
        return
    moved = min(n, int(timings.get("cache_n", 0)))
    timings["cache_n"] = int(timings.get("cache_n", 0)) - moved
    timings["prompt_n"] = int(timings.get("prompt_n", 0)) + moved
    timings["prompt_ms"] = float(timings.get("prompt_ms", 0.0)) + float(read.get("prompt_ms", 0.0))
    details = (result.get("usage") or {}).get("prompt_tokens_details")
    if isinstance(details, dict) and "cached_tokens" in details:
        details["cached_tokens"] = max(0, int(details["cached_tokens"]) - moved)


_servers: dict[str, Server] = {}
_servers_lock = threading.Lock()


def server_for(weights: LocalWeights, config: ServerConfig) -> Server:
    """The process's server for `weights`, created (not started) on first use."""
    with _servers_lock:
        server = _servers.get(weights.sha256)
        if server is None:
            server = _servers[weights.sha256] = Server(weights, config)
            return server
    have = server.config
    if (
        have.n_ctx != config.n_ctx
        or have.parallel != config.parallel
        or (None not in (config.threads, server.threads) and config.threads != server.threads)
    ):
        raise UserError(
            f"the local model {weights.name!r} already runs in this process with "
            f"n_ctx={have.n_ctx}, threads={server.threads}, parallel={have.parallel}; one "
            "weights file runs one server, so give every LocalModel for it the same settings"
        )
    return server
