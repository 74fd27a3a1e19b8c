"""`Agent`: instructions, a tier, tools and typed input/output; `run` sets up one run.

The turn loop is `_agent_loop`'s, the metered model call and the tool turn
`_agent_calls`', the final output's validation `_agent_output`'s. The stable part of the
prompt (instructions, tool definitions) always comes first so provider prompt caching hits.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, cast

from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypeVar

from tiered._agent_calls import ToolObserver
from tiered._agent_loop import TurnLoop, opening_messages
from tiered._agent_support import AgentStream, open_stream
from tiered._build import builder
from tiered._catalog import Tier
from tiered._context import DepsT, RunContext
from tiered._errors import UserError
from tiered._json import MAX_VALUES
from tiered._ledger import Ledger
from tiered._messages import DeltaCallback, Message, ReasoningEffort
from tiered._schema import StrictSchema
from tiered._tool import Tool, ToolSet
from tiered._usage import Usage
from tiered.models import Model

__all__ = ("Agent", "AgentResult", "ToolObserver")

OutputT = TypeVar("OutputT", default=Any)
_NO_DEPS: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentResult(Generic[OutputT]):
    """What one agent run produced and what it cost."""

    output: OutputT
    """The final output, validated against the agent's `output_type`."""
    agent: str
    """The agent's name."""
    model: str
    """The model that produced the output."""
    tier: Tier
    """The tier of that model."""
    usage: Usage
    """Tokens and requests of this run."""
    cost: Decimal
    """Dollars at the model's own prices."""
    equivalent_cost: Decimal
    """Dollars the same tokens cost on the OpenAI model this one stands in for."""
    turns: int
    """Model requests made."""
    messages: tuple[Message, ...] = field(repr=False)
    """The whole transcript, instructions first."""
    confidence: float | None = None
    """How sure the model was of what it decided: the lowest `ModelResponse.confidence`
    of the turns that called tools (the answer's turn when none did); None where a turn
    reported no token probabilities."""


_UNSET: Any = object()
_build_result = builder(AgentResult)


class Agent(Generic[OutputT, DepsT]):
    """An LLM agent. Subclass and set class attributes, or pass them as keywords.

    `Agent[Output, Deps]`: the type of the final output and of the `deps=` its tools
    read through `RunContext[Deps]`, so mypy checks a tool's context against what
    `run(..., deps=)` is given. The class docstring is the agent's description (what
    the planner reads when it picks executors); `instructions` is what the model reads.
    """

    name: str = ""
    """Unique name; defaults to the class name."""
    description: str = ""
    """One or two lines on what this agent does; defaults to the class docstring."""
    instructions: str = ""
    """The system prompt."""
    tier: Tier = Tier.NANO
    """The cheapest tier expected to do this agent's job."""
    model: Model | None = None
    """A fixed model, overriding the tier ladder."""
    tools: Sequence[Tool[DepsT]] = ()
    """Tools this agent may call; it can call no others."""
    input_type: Any = str
    """Type of the input: `str` or a pydantic model (validated before the run)."""
    output_type: Any = str
    """Type of the final output: `str` for free text, else structured output."""
    max_turns: int = 10
    """Most model requests in one run."""
    max_repairs: int = 2
    """Repair turns allowed for invalid output before `OutputInvalid`."""
    reasoning_effort: ReasoningEffort | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    """Output cap per request; unset, min(the model's max output, 4,096) is sent. Each
    request reserves its worst case (input plus this cap) against the run's budget."""
    tool_choice: str = "auto"
    """First turn's tool choice: 'auto', 'required' (must call a tool first) or a tool
    name; later turns are 'auto' so the agent can finish."""
    strict_output: bool = True
    """Send the output schema in OpenAI strict mode; False sends pydantic's schema
    non-strict (for `dict[str, X]`, `Any` and other types strict mode cannot express)."""
    may_escalate: bool = True
    """Offer the run's `escalate` tool to the model. False for an agent whose job is a
    tool call and a copy of its result: small models call `escalate` instead of
    reporting. Never offered to an agent with `tool_choice = "none"` (it answers at once).
    A failure or a verifier's rejection still escalates."""
    uses_dependencies: bool = True
    """Whether the agent reads the outputs of the subtasks it depends on. False: its
    arguments are its whole input, so a planner's schema gives it no `depends_on` (fewer
    tokens to write) and it starts in the first wave, with no upstream outputs to read."""
    max_output_values: int = MAX_VALUES
    """Most JSON values a final output may hold (a limit on untrusted input); raise it
    for a large structured output, as the planner does for big plans."""
    output_tool: str | None = None
    """A tool whose result is the agent's output: once it returns without error, its
    result is validated as the output and the run ends, with no turn for the model to
    copy it (and get it wrong). The tool must return the output type."""

    def __init__(
        self,
        *,
        name: str = _UNSET,
        description: str = _UNSET,
        instructions: str = _UNSET,
        tier: Tier = _UNSET,
        model: Model | None = _UNSET,
        tools: Sequence[Tool[DepsT]] = _UNSET,
        input_type: Any = _UNSET,
        output_type: Any = _UNSET,
        max_turns: int = _UNSET,
        max_repairs: int = _UNSET,
        reasoning_effort: ReasoningEffort | None = _UNSET,
        temperature: float | None = _UNSET,
        max_output_tokens: int | None = _UNSET,
        tool_choice: str = _UNSET,
        strict_output: bool = _UNSET,
        output_tool: str | None = _UNSET,
    ) -> None:
        given = {k: v for k, v in locals().items() if k != "self" and v is not _UNSET}
        for key, value in given.items():
            setattr(self, key, value)
        cls = type(self)
        if not self.name:
            self.name = cls.__name__ if cls is not Agent else "agent"
        if not self.description:
            doc = cls.__doc__ if cls is not Agent else None
            self.description = inspect.cleandoc(doc or "") or self.instructions[:200]
        self.tools = tuple(self.tools)
        if self.output_tool is not None and self.output_tool not in {t.name for t in self.tools}:
            raise UserError(
                f"agent {self.name!r}: output_tool {self.output_tool!r} is not one of its "
                f"tools ({', '.join(t.name for t in self.tools) or 'none'}); name one of them"
            )
        self._toolsets: dict[tuple[Tool[Any], ...], ToolSet] = {}
        self._output: StrictSchema | None = (
            None
            if self.output_type is str
            else StrictSchema(
                self.output_type, strict=self.strict_output, owner=f"agent {self.name!r} output"
            )
        )
        self._input_adapter: TypeAdapter[Any] | None = (
            None if self.input_type is str else TypeAdapter(self.input_type)
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} tier={self.tier.value}>"

    # --- hooks a subclass may override ------------------------------------------------

    async def validate_output(self, output: OutputT, ctx: RunContext[DepsT]) -> OutputT:
        """Check the typed output; raise `ModelRetry(why)` to send the model back to fix it."""
        return output

    def render_input(self, input: Any) -> str:
        """The user message for `input`; JSON for structured input."""
        if isinstance(input, str):
            return input
        if isinstance(input, BaseModel):
            return input.model_dump_json()
        return json.dumps(input, default=str)

    # --- schema and input -------------------------------------------------------------

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON schema of `input_type` (what a planner must send)."""
        return TypeAdapter(self.input_type).json_schema()

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """Strict JSON schema of the output, or None for free text."""
        return None if self._output is None else self._output.schema

    def validate_input(self, input: Any) -> Any:
        """Coerce `input` to `input_type`; raises `pydantic.ValidationError`."""
        if self._input_adapter is None:
            if not isinstance(input, str):
                return self.render_input(input)
            return input
        if isinstance(input, str) and self.input_type is not str:
            return self._input_adapter.validate_json(input)
        return self._input_adapter.validate_python(input)

    def _toolset(self, extra: Sequence[Tool[Any]]) -> ToolSet:
        key = tuple(extra)  # the tools themselves (not their ids, which are reused after GC)
        ts = self._toolsets.get(key)
        if ts is None:
            ts = self._toolsets[key] = ToolSet([*self.tools, *extra])
        return ts

    # --- the loop ---------------------------------------------------------------------

    async def run(
        self,
        input: Any,
        *,
        deps: DepsT = _NO_DEPS,
        model: Model | None = None,
        tier: Tier | None = None,
        models: Mapping[Tier, Model] | None = None,
        ledger: Ledger | None = None,
        history: Sequence[Message] = (),
        followup: str | None = None,
        extra_tools: Sequence[Tool[Any]] = (),
        subtask_id: str | None = None,
        context: str | None = None,
        dependencies: Mapping[str, Any] | None = None,
        tool_observer: ToolObserver | None = None,
        effects: Any = None,
        on_delta: DeltaCallback | None = None,
    ) -> AgentResult[OutputT]:
        """Run the agent on `input` until it produces a valid typed output.

        `model`, else `tier` looked up in `models` (else the environment's ladder),
        else the agent's own model or tier. `history` continues an earlier attempt
        (its system messages are replaced by this agent's); `followup` is appended
        to it as a user message. `context` (a task statement, earlier outputs) goes
        before the input in the user message; `dependencies` reach tools as
        `ctx.dependencies`; `tool_observer` is told of every tool call. `on_delta`
        receives the answer's pieces as the model streams them (see `run_stream`). An
        answer cut off at the token cap is retried once with a larger cap where the
        model's spec allows it. Raises `MaxTurnsExceeded`, `OutputInvalid`,
        `BudgetExceeded`, `EscalationRequested` or a `ModelError` (`OutputTruncated` when
        the retry was cut off too).
        """
        m = _resolve_model(self, model, tier, models)
        spec = m.spec
        ledger = ledger if ledger is not None else Ledger()
        if ledger.budget.usd is not None:  # a dollar budget over an unpriced model: refuse
            ledger.require_prices((spec,))
        toolset = self._toolset(extra_tools)
        typed_input = self.validate_input(input)
        ctx: RunContext[DepsT] = RunContext(
            deps=deps,
            agent=self.name,
            ledger=ledger,
            subtask_id=subtask_id,
            dependencies=dependencies if dependencies is not None else {},
            input=typed_input,
            effects=effects,
        )
        first = ""  # a continued run starts from its history instead
        if not history:
            first = self.render_input(typed_input)
            first = f"{context}\n\nInput:\n{first}" if context else first
        loop = TurnLoop(
            self,
            self._output,
            m,
            ctx,
            toolset,
            opening_messages(self.instructions, history, followup, first),
            continued=bool(history),
            on_delta=on_delta,
            observer=tool_observer,
        )
        output = await loop.run()
        return _build_result(
            output=output,
            agent=self.name,
            model=spec.name,
            tier=spec.tier,
            usage=loop.tally.usage,
            cost=loop.tally.cost,
            equivalent_cost=loop.tally.equivalent_cost,
            turns=loop.turns,
            messages=tuple(loop.messages),
            confidence=loop.confidence,
        )

    def run_sync(self, input: Any, **kwargs: Any) -> AgentResult[OutputT]:
        """`run` for scripts and notebooks: blocks until the result (takes `run`'s keywords).

        Inside a running event loop (a notebook) it runs in a worker thread's own loop.
        """
        from tiered._sync import run_sync

        return run_sync(self.run, input, **kwargs)

    @asynccontextmanager
    async def run_stream(
        self, input: Any, **options: Any
    ) -> AsyncIterator[AgentStream[AgentResult[OutputT]]]:
        """`run` (same keywords), streamed: iterate the stream for each `TextDelta` /
        `ToolCallDelta` as the model sends it; the last item is the `AgentResult`.
        Leaving the block before the end cancels the run."""
        async with open_stream(lambda on_delta: self.run(input, on_delta=on_delta, **options)) as s:
            yield s


def _resolve_model(
    agent: Agent[Any, Any], model: Model | None, tier: Tier | None, models: Any
) -> Model:
    """The model a run uses: `model`, else the agent's own, else its tier in `models`."""
    if model is not None:
        return model
    if agent.model is not None and tier is None:
        return agent.model
    wanted = tier or agent.tier
    if models is None:
        from tiered.models import models_from_env

        models = models_from_env()
    try:
        return cast(Model, models[wanted])
    except KeyError:
        raise UserError(
            f"agent {agent.name!r} needs a model for tier {wanted.value!r}: pass "
            "`model=` or a `models=` mapping with that tier"
        ) from None
