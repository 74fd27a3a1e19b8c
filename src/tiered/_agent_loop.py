"""The turn loop of one agent run: ask the model; run every tool call of the turn
concurrently and send the results back; stop at a final output that validates. Invalid
output gets a bounded number of repair turns carrying the validation error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tiered._agent_calls import Tally, ToolObserver, after_failed_call, open_call, run_tools
from tiered._agent_output import Repair, final_output, tool_output
from tiered._agent_support import truncated
from tiered._build import builder
from tiered._context import RunContext
from tiered._errors import (
    EscalationRequested,
    MaxTurnsExceeded,
    ModelError,
    OutputInvalid,
    TieredError,
)
from tiered._ledger import Charge
from tiered._logging import info_enabled
from tiered._messages import (
    DeltaCallback,
    Message,
    ModelRequest,
    ModelResponse,
    OutputSchema,
    SystemMessage,
    ToolResultMessage,
    UserMessage,
)
from tiered._names import legal_name
from tiered._ratelimit import DEFAULT_OUTPUT_CAP
from tiered._schema import StrictSchema
from tiered._tool import ToolSet
from tiered._usage import NO_USAGE
from tiered.models import Model

if TYPE_CHECKING:
    from tiered._agent import Agent

__all__ = ("TurnLoop", "opening_messages")


def _produced(results: Sequence[ToolResultMessage], tool: str | None) -> ToolResultMessage | None:
    """The first successful result of the agent's `output_tool` this turn, if any."""
    if tool is None:
        return None
    return next((r for r in results if r.name == tool and not r.is_error), None)


_build_request = builder(ModelRequest)
_ZERO = Decimal(0)

_SYSTEM: dict[str, SystemMessage] = {}
"""Instructions -> their system message, made once: messages are frozen, and every run of
an agent starts with the same one."""


def _system(instructions: str) -> SystemMessage:
    message = _SYSTEM.get(instructions)
    if message is None:
        if len(_SYSTEM) >= 256:  # instructions built on the fly: keep the cache bounded
            _SYSTEM.clear()
        message = _SYSTEM[instructions] = SystemMessage(content=instructions)
    return message


def opening_messages(
    instructions: str, history: Sequence[Message], followup: str | None, first: str
) -> list[Message]:
    """The transcript a run starts from: the instructions, then `history` (its system
    messages dropped) and `followup`, or, for a fresh run, `first` as the user message."""
    messages: list[Message] = [_system(instructions)]
    if not history:
        messages.append(UserMessage(content=first))
        return messages
    messages.extend(msg for msg in history if not isinstance(msg, SystemMessage))
    if followup:
        messages.append(UserMessage(content=followup))
    return messages


class TurnLoop(Tally):
    """The turns of one agent run, and what they have used so far (`tally`, `turns`,
    `messages`: the transcript, instructions first)."""

    __slots__ = (
        "_agent",
        "_called",
        "_cap",
        "_continued",
        "_ctx",
        "_model",
        "_observer",
        "_on_delta",
        "_output",
        "_schema",
        "_toolset",
        "confidence",
        "messages",
        "turns",
    )

    def __init__(
        self,
        agent: Agent[Any, Any],
        output: StrictSchema | None,
        model: Model,
        ctx: RunContext[Any],
        toolset: ToolSet,
        messages: list[Message],
        *,
        continued: bool,
        on_delta: DeltaCallback | None,
        observer: ToolObserver | None,
    ) -> None:
        self.messages = messages
        self.usage, self.cost, self.equivalent_cost = NO_USAGE, _ZERO, _ZERO
        self.turns = 0
        self.confidence: float | None = None
        """What `AgentResult.confidence` reports (see `_confident`)."""
        self._called = False
        self._agent = agent
        self._output = output
        self._model = model
        self._ctx = ctx
        self._toolset = toolset
        self._continued = continued
        self._on_delta = on_delta
        self._observer = observer
        self._schema = (
            None
            if output is None
            else OutputSchema(
                name=legal_name(agent.name, suffix="_output"),
                schema=output.schema,
                strict=output.strict,
            )
        )
        spec = model.spec
        self._cap = agent.max_output_tokens or min(spec.max_output_tokens, DEFAULT_OUTPUT_CAP)

    @property
    def tally(self) -> Tally:
        """What the run's calls used and cost so far (the loop itself)."""
        return self

    async def run(self) -> Any:
        """Turns until an output validates, and that output. Raises `MaxTurnsExceeded`,
        `OutputInvalid`, or what a call, a tool or the output hook raised, each carrying
        the run's usage (an `EscalationRequested` the transcript too)."""
        # One coroutine for the whole loop, the model call awaited in it: each frame on
        # this stack stays alive (and is scanned by the cyclic GC) while the model answers.
        agent, ctx, messages = self._agent, self._ctx, self.messages
        repairs = 0
        try:
            for turn in range(1, agent.max_turns + 1):
                self.turns = ctx.turn = turn
                request = self._request(turn)
                logged = info_enabled()  # the default logger drops INFO: build no fields
                if logged:
                    ctx.log.debug(
                        "model.request",
                        model=self._model.spec.name,
                        turn=turn,
                        messages=len(messages),
                    )
                started = time.perf_counter()
                # `metered_ask` written out (one coroutine fewer on every in-flight stack):
                # the worst case reserved first (BudgetExceeded before anything is sent).
                model, tally = self._model, self
                try:
                    with open_call(model, request, ctx.ledger, self._cap) as calls:
                        try:
                            response = await model.request(request)
                            if response.finish_reason == "length":
                                raise truncated(response, request)
                        except Exception as exc:
                            calls.failed(exc)  # its usage booked, or possibly billed, or released
                            exc.charges = list(calls.charges)  # type: ignore[attr-defined]
                            raise
                        calls.succeeded(response.usage)
                    charges = calls.charges
                except ModelError as exc:  # a truncated answer is retried once, larger
                    response, charges = await after_failed_call(model, request, ctx, tally, exc)
                tally.add(charges)
                ctx.usage = tally.usage
                charge = charges[-1]
                if logged:
                    self._logged(turn, response, charge, started)
                reply = response.message
                messages.append(reply)
                self._confident(reply.tool_calls, response.confidence)
                try:
                    if not reply.tool_calls:
                        return await final_output(
                            reply, self._output, self._check, agent.max_output_values
                        )
                    results = await run_tools(self._toolset, reply.tool_calls, ctx, self._observer)
                    messages.extend(results)
                    produced = _produced(results, agent.output_tool)
                    if produced is None:
                        continue
                    return await tool_output(
                        produced.name, produced.content, self._output, self._check
                    )
                except Repair as exc:
                    repairs += 1
                    if repairs > agent.max_repairs:
                        raise OutputInvalid(
                            f"agent {agent.name!r}: output still invalid after "
                            f"{agent.max_repairs} repair turns ({exc.problem}); simplify the "
                            "output type, improve the instructions, or use a higher tier",
                            errors=exc.problem,
                            messages=messages,
                        ) from None
                    ctx.log.info("output.repair", turn=turn, problem=exc.problem[:500])
                    messages.append(UserMessage(content=exc.prompt))
            raise MaxTurnsExceeded(agent.max_turns, messages)
        except TieredError as exc:
            if exc.usage is None:
                exc.usage = self.usage
            if isinstance(exc, EscalationRequested):  # from a tool or from validate_output
                exc.messages = tuple(self.messages)
            raise

    def _confident(self, called: object, confidence: float | None) -> None:
        """Keep the lowest confidence of the turns that called tools, or, until one does,
        the latest turn's; an unknown one among the calls makes the run's unknown."""
        if not called:
            if not self._called:
                self.confidence = confidence
        elif not self._called:
            self._called, self.confidence = True, confidence
        elif self.confidence is not None:
            self.confidence = None if confidence is None else min(self.confidence, confidence)

    async def _check(self, value: Any) -> Any:
        return await self._agent.validate_output(value, self._ctx)

    def _request(self, turn: int) -> ModelRequest:
        """One turn's model request."""
        agent = self._agent
        return _build_request(
            messages=tuple(self.messages),
            tools=self._toolset.definitions,
            tool_choice=agent.tool_choice if turn == 1 and not self._continued else "auto",
            output_schema=self._schema,
            # the output tool's first result ends the run: one call a turn, nothing wasted
            parallel_tool_calls=agent.output_tool is None,
            reasoning_effort=agent.reasoning_effort,
            temperature=agent.temperature,
            max_output_tokens=self._cap,
            metadata={"agent": agent.name, "subtask_id": self._ctx.subtask_id or ""},
            on_delta=self._on_delta,
        )

    def _logged(self, turn: int, response: ModelResponse, charge: Charge, started: float) -> None:
        """Log one turn's call (only when logging is configured: the fields cost to build)."""
        log, spec = self._ctx.log, self._model.spec
        log.info(
            "model.response",
            model=spec.name,
            tier=spec.tier.value,
            turn=turn,
            input_tokens=response.usage.input_tokens,
            cached_input_tokens=response.usage.cached_input_tokens,
            output_tokens=response.usage.output_tokens,
            cost_usd=str(charge.cost),
            equivalent_cost_usd=str(charge.equivalent_cost),
            latency_ms=round((time.perf_counter() - started) * 1e3, 2),
        )
