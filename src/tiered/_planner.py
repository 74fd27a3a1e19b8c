"""The planner: a flagship agent that turns a goal into a `Plan`, decomposes a failed
subtask into a sub-plan, and composes the run's final answer.

The executors' catalog (name, description, input and output schema, default tier) sits
in the stable system prompt, so provider prompt caching serves it on every call. The
plan's output schema is a union with one branch per executor, each binding that
agent's name to its own input schema, so schema-constrained decoding can only produce
arguments of the right shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from tiered._agent import Agent, AgentResult
from tiered._catalog import Tier
from tiered._context import RunContext
from tiered._errors import ModelRetry, OutputInvalid, PlanInvalid
from tiered._ledger import Ledger
from tiered._messages import DeltaCallback
from tiered._plan import Plan, Stakes, Subtask, check_plan
from tiered.models import Ladder, Model, models_from_env

__all__ = ("Planner",)

PLANNER_INSTRUCTIONS = """\
You are the planner of a team of executor agents. Break the goal into a small plan of
subtasks. Each subtask names exactly one executor agent from the catalog below and gives
its arguments in that agent's input schema. Use depends_on to pass one subtask's output
to another; subtasks without dependencies run in parallel. Prefer few, concrete
subtasks with short ids, each with one short sentence of instructions, and never two
subtasks doing the same work. Mark plan_shaped only for work that is itself choosing a
strategy or decomposing an ambiguous goal, and stakes "high" only for high-stakes single
calls with no human review. The final answer is written from the subtasks' outputs
after they run: add no subtask for it, and leave final_answer null unless the answer
needs a form the goal does not say (never put a number in it).
Example, for the goal "Which costs more, item X or item Y?" with agents Price and Compare:
{"subtasks": [{"id": "x", "agent": "Price", "instructions": "Find X's price.",
"arguments": {"item": "X"}, "depends_on": [], "plan_shaped": false, "stakes": "normal"},
{"id": "y", "agent": "Price", "instructions": "Find Y's price.", "arguments": {"item": "Y"},
"depends_on": [], "plan_shaped": false, "stakes": "normal"}, {"id": "which", "agent":
"Compare", "instructions": "Say which price is higher.", "arguments": {"items": ["X", "Y"]},
"depends_on": ["x", "y"], "plan_shaped": false, "stakes": "normal"}], "final_answer": null}"""

COMPOSE_INSTRUCTIONS = """\
You write the final answer of a run from the outputs of its subtasks. Use only what the
outputs say; if a subtask failed, say what is missing rather than inventing it."""


def _type_name(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "anyOf" in schema:
        return " | ".join(_type_name(s, defs) for s in schema["anyOf"])
    t = schema.get("type", "any")
    if t == "array":
        return f"list[{_type_name(schema.get('items', {}), defs)}]"
    return "null" if t == "null" else str(t)


def _fields(schema: dict[str, Any] | None) -> str:
    """A schema's top-level fields as `name: type (description)`, compact for the prompt."""
    if not schema:
        return "text"
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    if not props:
        return _type_name(schema, defs)
    parts = []
    for name, sub in props.items():
        desc = sub.get("description")
        parts.append(f"{name}: {_type_name(sub, defs)}" + (f" ({desc})" if desc else ""))
    return "{" + "; ".join(parts) + "}"


def _catalog_text(executors: Mapping[str, Agent[Any]]) -> str:
    """The executors' catalog: compact signatures (the output schema enforces the rest)."""
    lines = ["Executor agents (name, default tier, what it does, arguments, output):"]
    for name in sorted(executors):
        a = executors[name]
        args = '{"input": string}' if a.input_type is str else _fields(a.input_schema)
        lines.append(
            f"- {name} [{a.tier.value}]: {a.description}\n"
            f"  arguments: {args}\n  output: {_fields(a.output_schema)}"
        )
    return "\n".join(lines)


class _TextInput(BaseModel):
    input: str = Field(description="The text this agent works on.")


def _plan_output_type(executors: Mapping[str, Agent[Any]]) -> type[BaseModel]:
    """A pydantic model whose schema is the plan, one subtask branch per executor."""
    variants: list[type[BaseModel]] = []
    for name in sorted(executors):
        agent = executors[name]
        args_type: Any = _TextInput if agent.input_type is str else agent.input_type
        agent_tag: Any = Literal[name]
        stakes_type: Any = Literal["low", "normal", "high"]
        variant = create_model(
            f"Subtask_{''.join(ch if ch.isalnum() else '_' for ch in name)}",
            id=(str, Field(description="Unique snake_case id naming the step.")),
            agent=(agent_tag, Field(description="The executor agent.")),
            instructions=(str, Field(description="What this subtask must achieve.")),
            arguments=(args_type, Field(description="Input for this agent.")),
            depends_on=(list[str], Field(description="Ids of subtasks this one needs.")),
            plan_shaped=(bool, Field(description="Is the work itself planning?")),
            stakes=(stakes_type, Field(description="Cost of a mistake.")),
        )
        variants.append(variant)
    if len(variants) == 1:
        item: Any = variants[0]
    else:
        item = Annotated[Union[tuple(variants)], Field(discriminator="agent")]  # noqa: UP007
    return create_model(
        "PlanOutput",
        subtasks=(list[item], Field(description="The subtasks, dependencies first.")),
        final_answer=(
            str,
            Field(default="", description="Null, or the form the answer takes (no numbers)."),
        ),
    )


def _to_plan(draft: BaseModel) -> Plan:
    subtasks = []
    for s in draft.subtasks:  # type: ignore[attr-defined]
        args = s.arguments
        arguments = args.model_dump() if isinstance(args, BaseModel) else dict(args)
        subtasks.append(
            Subtask(
                id=s.id,
                agent=s.agent,
                instructions=s.instructions,
                arguments=arguments,
                depends_on=tuple(s.depends_on),
                plan_shaped=s.plan_shaped,
                stakes=Stakes(s.stakes),
            )
        )
    return Plan(subtasks=tuple(subtasks), final_answer=draft.final_answer)  # type: ignore[attr-defined]


class _PlanningAgent(Agent[Any]):
    """The planner's agent for one executor catalog; checks the DAG before accepting it."""

    def __init__(self, executors: Mapping[str, Agent[Any]], **kw: Any) -> None:
        self.executors = dict(executors)
        super().__init__(output_type=_plan_output_type(executors), **kw)

    async def validate_output(self, output: Any, ctx: RunContext[Any]) -> Any:
        plan = _to_plan(output)
        problems = check_plan(plan, self.executors)
        if problems:
            raise ModelRetry(
                "The plan has problems:\n"
                + "\n".join(f"- {p}" for p in problems)
                + "\nReturn the whole corrected plan."
            )
        return plan


class Planner:
    """Plans a goal, decomposes a failed subtask, and composes the final answer.

    `notes` are workflow-specific planning rules, sent after the catalog: a small planner
    follows a concrete rule ("one OrderCheck per order id") better than general advice.
    """

    def __init__(
        self,
        *,
        tier: Tier | None = None,
        model: Model | None = None,
        instructions: str = PLANNER_INSTRUCTIONS,
        max_repairs: int = 2,
        max_subtasks: int = 50,
        notes: str = "",
    ) -> None:
        self.tier = tier
        self.model = model
        self.instructions = instructions
        self.notes = notes
        self.max_repairs = max_repairs
        self.max_subtasks = max_subtasks
        self._agents: dict[tuple[tuple[str, Agent[Any]], ...], _PlanningAgent] = {}
        self._composers: dict[Any, Agent[Any]] = {}

    def tier_on(self, models: Mapping[Tier, Model]) -> Tier:
        """The planner's tier on this ladder: the one it was given, else the top rung."""
        return self.tier if self.tier is not None else Ladder.of(models).top

    def _call_tier(self, models: Mapping[Tier, Model]) -> Tier | None:
        return None if self.model is not None else self.tier_on(models)

    def _prompt(self, executors: Mapping[str, Agent[Any]]) -> str:
        prompt = f"{self.instructions}\n\n{_catalog_text(executors)}"
        return f"{prompt}\n\nFor this workflow: {self.notes}" if self.notes else prompt

    def _planning_agent(self, executors: Mapping[str, Agent[Any]]) -> _PlanningAgent:
        # keyed by the executors themselves: their schemas and descriptions shape the prompt
        key = tuple((name, executors[name]) for name in sorted(executors))
        agent = self._agents.get(key)
        if agent is None:
            agent = self._agents[key] = _PlanningAgent(
                executors,
                name="planner",
                instructions=self._prompt(executors),
                tier=self.tier or Tier.FLAGSHIP,
                model=self.model,
                max_repairs=self.max_repairs,
                max_turns=self.max_repairs + 2,
            )
        return agent

    async def _run_planning(
        self,
        prompt: str,
        executors: Mapping[str, Agent[Any]],
        *,
        models: Mapping[Tier, Model] | None,
        ledger: Ledger,
        deps: Any,
        on_delta: DeltaCallback | None = None,
    ) -> tuple[Plan, AgentResult[Any]]:
        agent = self._planning_agent(executors)
        models = models if models is not None else models_from_env()
        try:
            result = await agent.run(
                prompt,
                models=models,
                tier=self._call_tier(models),
                ledger=ledger,
                deps=deps,
                on_delta=on_delta,
            )
        except OutputInvalid as exc:
            problems = [
                line.removeprefix("- ") for line in exc.errors.splitlines() if line.startswith("- ")
            ] or [exc.errors]
            err = PlanInvalid(problems)
            err.usage = exc.usage
            raise err from exc
        plan: Plan = result.output
        if len(plan.subtasks) > self.max_subtasks:
            raise PlanInvalid(
                [f"the plan has {len(plan.subtasks)} subtasks; the limit is {self.max_subtasks}"]
            )
        return plan, result

    async def plan(
        self,
        goal: str,
        executors: Mapping[str, Agent[Any]],
        *,
        models: Mapping[Tier, Model] | None = None,
        ledger: Ledger,
        deps: Any = None,
        on_delta: DeltaCallback | None = None,
    ) -> tuple[Plan, AgentResult[Any]]:
        """A valid plan for `goal`, after at most `max_repairs` repair turns, else PlanInvalid.

        `on_delta` receives the plan's text as the model streams it."""
        return await self._run_planning(
            f"Goal: {goal}", executors, models=models, ledger=ledger, deps=deps, on_delta=on_delta
        )

    async def decompose(
        self,
        goal: str,
        subtask: Subtask,
        reason: str,
        executors: Mapping[str, Agent[Any]],
        *,
        inputs: Mapping[str, Any] | None = None,
        models: Mapping[Tier, Model] | None = None,
        ledger: Ledger,
        deps: Any = None,
    ) -> tuple[Plan, AgentResult[Any]]:
        """A sub-plan doing `subtask`'s work in smaller steps, because it failed for `reason`."""
        prompt = (
            f"Overall goal: {goal}\n"
            f"Decompose this one subtask into smaller subtasks.\n"
            f"Subtask {subtask.id!r} for agent {subtask.agent!r}: {subtask.instructions}\n"
            f"Its arguments: {json.dumps(subtask.arguments, default=str)}\n"
            f"Why it needs decomposing: {reason}"
        )
        if inputs:
            prompt += "\nOutputs it may use:\n" + _render_outputs(inputs)
        return await self._run_planning(prompt, executors, models=models, ledger=ledger, deps=deps)

    async def compose(
        self,
        goal: str,
        plan: Plan,
        outputs: Mapping[str, Any],
        *,
        failures: Mapping[str, str] | None = None,
        output_type: Any = str,
        models: Mapping[Tier, Model] | None = None,
        ledger: Ledger,
        deps: Any = None,
        on_delta: DeltaCallback | None = None,
        feedback: str | None = None,
    ) -> AgentResult[Any]:
        """The run's final typed answer from the subtask outputs (streamed to `on_delta`);
        `feedback` says what a check found wrong with the previous answer."""
        composer = self._composers.get(output_type)
        if composer is None:
            composer = self._composers[output_type] = Agent(
                name="planner.compose",
                instructions=COMPOSE_INSTRUCTIONS,
                tier=self.tier or Tier.FLAGSHIP,
                model=self.model,
                output_type=output_type,
                max_repairs=self.max_repairs,
                max_turns=self.max_repairs + 2,
            )
        prompt = f"Goal: {goal}\n"
        if plan.final_answer:
            prompt += f"The final answer must contain: {plan.final_answer}\n"
        prompt += "Subtask outputs:\n" + _render_outputs(outputs)
        if failures:
            prompt += "\nFailed subtasks:\n" + "\n".join(f"{k}: {v}" for k, v in failures.items())
        if feedback:
            prompt += (
                f"\nYour previous answer was rejected: {feedback}\nWrite it again, "
                "taking every fact and number from the subtask outputs above.\n"
            )
        models = models if models is not None else models_from_env()
        tier = self._call_tier(models)
        return await composer.run(
            prompt, models=models, tier=tier, ledger=ledger, deps=deps, on_delta=on_delta
        )


def _render_outputs(outputs: Mapping[str, Any]) -> str:
    return "\n".join(f"{k}: {_json(v)}" for k, v in outputs.items())


def _json(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def render_outputs(outputs: Mapping[str, Any]) -> str:
    """Dependency outputs as lines of `id: json`, for prompts."""
    return _render_outputs(outputs)
