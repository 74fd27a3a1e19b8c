"""`LocalModel`: the embedded default, Qwen2.5-Coder running in-process on llama.cpp.

The runtime is `xllamacpp`'s in-process server (`_local_server`). We send it raw text
completions with a prompt built from our own ChatML template (`_local_protocol`), so the
chat template carried inside the third-party GGUF never decides how prompts look; tools
and structured output are schema-constrained JSON read back into an `AssistantMessage`.
Every call's llama.cpp timings (prompt and generated tokens and milliseconds, cached
tokens) are kept on the model as `LocalTiming` records and logged at debug level.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from tiered._catalog import FREE, ModelSpec, Tier, default_catalog
from tiered._errors import (
    UserError,
)
from tiered._logging import get_logger
from tiered._messages import (
    DeltaCallback,
    ModelRequest,
    ModelResponse,
    TextDelta,
)
from tiered.models._local_cores import default_threads
from tiered.models._local_protocol import protocol_for, render_prompt
from tiered.models._local_replies import UNLOOP, add_usage, read_reply, repeated_calls
from tiered.models._local_schema import compact
from tiered.models._local_server import OnPiece, Server, ServerConfig, server_for
from tiered.models._weights import LocalWeights, resolve_weights

__all__ = (
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "DEFAULT_N_CTX",
    "DEFAULT_SLOTS",
    "LocalModel",
    "LocalTiming",
    "default_threads",
    "local_ladder",
    "render_prompt",
)

DEFAULT_N_CTX = 8192
"""Tokens of context per slot: room for a planner prompt with an executor catalog."""
DEFAULT_MAX_OUTPUT_TOKENS = 1024
"""Default cap on generated tokens, so a small model cannot ramble for minutes."""
DEFAULT_SLOTS = 4
"""Prompt prefixes each server keeps warm (planner, composer, a few executors)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalTiming:
    """Where one local call's time went, from llama.cpp's own `timings`."""

    model: str
    tier: str
    agent: str
    """The request's `metadata["agent"]`, or ""."""
    prompt_tokens: int
    cached_tokens: int
    """Prompt tokens served from the slot's cache (not read again)."""
    prompt_ms: float
    """Time reading the uncached prompt tokens."""
    output_tokens: int
    output_ms: float
    wall_s: float
    """The whole call, waiting for a slot or the cores included."""
    slot: int
    restored: bool
    """Whether the slot's prefix was restored from a saved file (an earlier process's, or
    one a request sharing the prefix saved in this process while this one waited)."""


def _env_number(name: str, kind: type[int] | type[float]) -> Any:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise UserError(f"{name} must be a number, not {text!r}") from None


# --- the model ------------------------------------------------------------------------


class LocalModel:
    """A `Model` served by llama.cpp in this process; free, and metered as its equivalent.

    The server starts on the first request (assembling and verifying the weights the
    first time) and is shared by every `LocalModel` on the same weights file.
    """

    def __init__(
        self,
        weights: LocalWeights | str = "qwen2.5-coder-0.5b",
        *,
        tier: Tier = Tier.NANO,
        equivalent: str | None = None,
        threads: int | None = None,
        n_ctx: int | None = None,
        parallel: int = DEFAULT_SLOTS,
        max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        seed: int | None = None,
        temperature: float | None = None,
        verbose: bool = False,
        list_requests: bool | None = None,
    ) -> None:
        """`equivalent` defaults to the OpenAI catalog model on `tier`; `threads` to
        `default_threads()`; `n_ctx` (per slot) to `DEFAULT_N_CTX`; `parallel` is the
        number of slots (prompt prefixes kept warm, requests decoded at once); `seed`
        (else `$TIERED_LOCAL_SEED`) seeds sampling; `temperature` (else
        `$TIERED_LOCAL_TEMPERATURE`, else 0: greedy) applies where a request sets none;
        `verbose` shows llama.cpp's log; `list_requests` (else the weights'
        `lists_requests`) has replies that may make parallel calls list the requests
        first."""
        if threads is not None and threads < 1:
            raise UserError(f"threads must be at least 1, not {threads}")
        if parallel < 1:
            raise UserError(f"parallel must be at least 1, not {parallel}")
        if max_output_tokens < 1:
            raise UserError(f"max_output_tokens must be at least 1, not {max_output_tokens}")
        self.weights = resolve_weights(weights)
        self.list_requests: bool = (
            self.weights.lists_requests if list_requests is None else list_requests
        )
        """Whether parallel-call replies list the requests before the calls."""
        self.seed: int | None = seed if seed is not None else _env_number("TIERED_LOCAL_SEED", int)
        """Sampling seed sent with every request (None: llama.cpp picks one)."""
        if temperature is None:
            temperature = _env_number("TIERED_LOCAL_TEMPERATURE", float)
        self.temperature: float = 0.0 if temperature is None else float(temperature)
        """Temperature for requests that set none."""
        self.timings: deque[LocalTiming] = deque(maxlen=10_000)
        """The latest calls' timings, oldest first."""
        n_ctx = n_ctx or DEFAULT_N_CTX
        self._config = ServerConfig(
            n_ctx=n_ctx, threads=threads, parallel=parallel, verbose=verbose
        )
        self._spec = ModelSpec(
            name=self.weights.name,
            tier=tier,
            context_window=n_ctx,
            max_output_tokens=max_output_tokens,
            pricing=FREE,
            provider="local",
            equivalent=equivalent or default_catalog().for_tier(tier).name,
        )

    @property
    def spec(self) -> ModelSpec:
        """Name, tier, $0 prices and the OpenAI model this one stands in for."""
        return self._spec

    def __repr__(self) -> str:
        return f"LocalModel({self.weights.name!r}, tier={self._spec.tier.value!r})"

    async def start(self) -> None:
        """Start the server now rather than on the first request (e.g. at app startup)."""
        server = server_for(self.weights, self._config)
        await anyio.to_thread.run_sync(server.start)

    def load_in_background(self, *, after: LocalModel | None = None) -> None:
        """Begin loading the weights on a daemon thread and return at once (the CLI loads
        the executors' model while the planner plans); a failure is left for the first
        request to raise. With `after`, that model loads first: the planner's model
        alone, then the rest (side by side, the 1.5B took 4.6-7.6 s to load, alone 2.9)."""
        server = server_for(self.weights, self._config)
        first = server_for(after.weights, after._config) if after is not None else None

        def load() -> None:
            with contextlib.suppress(Exception):
                if first is not None:
                    first.start()
                server.start()

        threading.Thread(target=load, name=f"load-{self.weights.name}", daemon=True).start()

    async def aclose(self) -> None:
        """Nothing to release per model: the shared llama.cpp server lives for the process."""

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Run one request; tools and structured output via constrained JSON.

        A reply that only repeats calls already answered above is a loop small models
        fall into (the 1.5B re-sent one calculator call 8 times): it is asked again for
        its final answer, and the usage of both calls is counted. With `request.on_delta`
        set, the text is handed over as it is generated (`TextDelta`s; for tools and
        structured output, the constrained JSON itself).
        """
        response = await self._request(request)
        calls = response.message.tool_calls
        if not (calls and request.tool_choice == "auto" and repeated_calls(calls, request)):
            return response
        get_logger().debug("local_model.repeated_call", model=self._spec.name, calls=len(calls))
        final = await self._request(replace(request, tool_choice="none"))
        return replace(final, usage=response.usage + final.usage)

    async def _request(self, request: ModelRequest) -> ModelResponse:
        protocol = protocol_for(request, list_requests=self.list_requests)
        server = server_for(self.weights, self._config)
        if not server.started:
            await anyio.to_thread.run_sync(server.start)
        prompt = render_prompt(request.messages, protocol.instructions, protocol.directive)
        temperature = self.temperature if request.temperature is None else request.temperature
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": request.max_output_tokens or self._spec.max_output_tokens,
            "temperature": temperature,
            "cache_prompt": True,
            "logprobs": 1,  # each token's probability, for `ModelResponse.confidence`
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if protocol.schema is not None:
            body["json_schema"] = compact(protocol.schema)
        prefix = prompt[: prompt.find("<|im_end|>")]  # the system turn: the stable prefix
        raw = await self._generate(server, body, prefix, request)
        if raw.get("runaway"):
            # A runaway repetition, stopped early: generated once more with llama.cpp's
            # DRY sampler, which penalises extending a repeated sequence; both are booked.
            get_logger().debug("local_model.runaway", model=self._spec.name)
            again = await self._generate(server, {**body, **UNLOOP}, prefix, request)
            raw = {**again, "usage": add_usage(raw.get("usage"), again.get("usage"))}
        return read_reply(raw, protocol, self._spec.name, self._config.n_ctx)

    async def _generate(
        self, server: Server, body: dict[str, Any], prefix: str, request: ModelRequest
    ) -> dict[str, Any]:
        """One completion on the shared server, its timings recorded."""
        cancel = threading.Event()
        started = time.perf_counter()
        try:
            raw = await anyio.to_thread.run_sync(
                server.complete,
                body,
                prefix,
                cancel,
                _forwarder(request.on_delta),
                limiter=server.limiter(),
                abandon_on_cancel=True,
            )
        finally:
            cancel.set()  # an abandoned (cancelled) generation stops at its next token
        self._record(raw, request, time.perf_counter() - started)
        return raw

    def _record(self, raw: Mapping[str, Any], request: ModelRequest, wall_s: float) -> None:
        t = raw.get("timings") or {}
        if not t:
            return
        timing = LocalTiming(
            model=self._spec.name,
            tier=self._spec.tier.value,
            agent=request.metadata.get("agent", ""),
            prompt_tokens=int(t.get("cache_n", 0)) + int(t.get("prompt_n", 0)),
            cached_tokens=int(t.get("cache_n", 0)),
            prompt_ms=float(t.get("prompt_ms", 0.0)),
            output_tokens=int(t.get("predicted_n", 0)),
            output_ms=float(t.get("predicted_ms", 0.0)),
            wall_s=round(wall_s, 3),
            slot=int(raw.get("slot", -1)),
            restored=bool(raw.get("restored")),
        )
        self.timings.append(timing)
        get_logger().debug(
            "local_model.timings", **{k: getattr(timing, k) for k in timing.__slots__}
        )


def _forwarder(on_delta: DeltaCallback | None) -> OnPiece:
    """Pieces generated in the server's thread, handed to `on_delta` on the event loop."""
    if on_delta is None:
        return None
    token = anyio.lowlevel.current_token()

    def forward(piece: str) -> None:
        with contextlib.suppress(RuntimeError):  # the run ended (a cancelled call) meanwhile
            anyio.from_thread.run_sync(on_delta, TextDelta(text=piece), token=token)

    return forward


def local_ladder(
    *,
    nano: LocalWeights | str = "qwen2.5-coder-0.5b",
    mini: LocalWeights | str = "qwen2.5-coder-1.5b",
    flagship: LocalWeights | str = "qwen2.5-coder-1.5b",
    threads: int | None = None,
    n_ctx: int | None = None,
) -> dict[Tier, LocalModel]:
    """A local model per tier, each metered as the OpenAI model on its tier.

    Tiers on the same weights share one server (the default mini and flagship do).
    """
    chosen = {Tier.NANO: nano, Tier.MINI: mini, Tier.FLAGSHIP: flagship}
    return {
        tier: LocalModel(weights, tier=tier, threads=threads, n_ctx=n_ctx)
        for tier, weights in chosen.items()
    }
