"""What the planner is asked for: its instructions, the executors' catalog, and the plan's
output schema (one subtask branch per executor, so constrained decoding can only write
arguments of the right shape), in a full form and a lean one for small planners.

The lean form asks only each subtask's id, agent, arguments and dependencies: about 40%
fewer tokens for a 1.5B planner to generate, where generation is most of a local run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from tiered._agent import Agent
from tiered._plan import Plan, Stakes, Subtask

__all__ = (
    "PLANNER_INSTRUCTIONS",
    "catalog_text",
    "default_instructions",
    "plan_output_type",
    "to_plan",
)

_ROLE = """\
You are the planner of a team of executor agents. Break the goal into a small plan of
subtasks. Each subtask names exactly one executor agent from the catalog below and gives
its arguments in that agent's input schema. Use depends_on to pass one subtask's output
to another; subtasks without dependencies run in parallel. Prefer few, concrete
subtasks with short ids, and never two subtasks doing the same work."""

_FULL_FIELDS = """\
Give each subtask one short sentence of instructions. Mark plan_shaped only for work
that is itself choosing a strategy or decomposing an ambiguous goal, and stakes "high"
only for high-stakes single calls with no human review."""

_FINAL = """\
The final answer is written from the subtasks' outputs after they run: add no subtask
for it."""

_FULL_FINAL = """\
Leave final_answer null unless the answer needs a form the goal does not say (never put
a number in it)."""

_EXAMPLE_GOAL = (
    'Example, for the goal "Which costs more, item X or item Y?" with agents Price and Compare:'
)
_EXAMPLE: tuple[tuple[str, str, str, dict[str, Any], list[str]], ...] = (
    ("x", "Price", "Find X's price.", {"item": "X"}, []),
    ("y", "Price", "Find Y's price.", {"item": "Y"}, []),
    ("which", "Compare", "Say which price is higher.", {"items": ["X", "Y"]}, ["x", "y"]),
)


def _example(lean: bool) -> str:
    subtasks = []
    for sid, agent, instructions, arguments, depends_on in _EXAMPLE:
        sub: dict[str, Any] = {"id": sid, "agent": agent}
        if not lean:
            sub["instructions"] = instructions
        sub |= {"arguments": arguments, "depends_on": depends_on}
        if not lean:
            sub |= {"plan_shaped": False, "stakes": "normal"}
        subtasks.append(sub)
    plan: dict[str, Any] = {"subtasks": subtasks}
    if not lean:
        plan["final_answer"] = None
    return f"{_EXAMPLE_GOAL}\n{json.dumps(plan)}"


def default_instructions(*, lean: bool) -> str:
    """The planner's instructions for the full or the lean plan form."""
    parts = [_ROLE] if lean else [_ROLE, _FULL_FIELDS]
    parts.append(_FINAL if lean else f"{_FINAL} {_FULL_FINAL}")
    parts.append(_example(lean))
    return "\n".join(parts)


PLANNER_INSTRUCTIONS = default_instructions(lean=False)
"""The planner's default instructions (the full plan form)."""


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


def catalog_text(executors: Mapping[str, Agent[Any]], *, lean: bool = False) -> str:
    """The executors' catalog: compact signatures (the output schema enforces the rest).

    Lean, it names each output's fields only and leaves the arguments to the plan's
    schema, which the model reads anyway: a shorter prompt to read on a cold cache."""
    if lean:
        lines = ["Executor agents (name, default tier, what it does, output fields):"]
        for name in sorted(executors):
            a = executors[name]
            props = (a.output_schema or {}).get("properties") or {"text": None}
            lines.append(f"- {name} [{a.tier.value}]: {a.description} -> {', '.join(props)}")
        return "\n".join(lines)
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


def plan_output_type(executors: Mapping[str, Agent[Any]], *, lean: bool) -> type[BaseModel]:
    """A pydantic model whose schema is the plan, one subtask branch per executor; `lean`
    leaves out instructions, plan_shaped, stakes and final_answer."""
    variants: list[type[BaseModel]] = []
    for name in sorted(executors):
        agent = executors[name]
        args_type: Any = _TextInput if agent.input_type is str else agent.input_type
        agent_tag: Any = Literal[name]
        fields: dict[str, Any] = {
            "id": (str, Field(description="Unique snake_case id naming the step.")),
            "agent": (agent_tag, Field(description="The executor agent.")),
        }
        if not lean:
            fields["instructions"] = (str, Field(description="What this subtask must achieve."))
        fields["arguments"] = (args_type, Field(description="Input for this agent."))
        if agent.uses_dependencies:  # else its arguments are all it reads: nothing to wait for
            needs = Field(description="Ids of subtasks this one needs.")
            fields["depends_on"] = (list[str], needs)
        if not lean:
            stakes_type: Any = Literal["low", "normal", "high"]
            fields["plan_shaped"] = (bool, Field(description="Is the work itself planning?"))
            fields["stakes"] = (stakes_type, Field(description="Cost of a mistake."))
        tag = "".join(ch if ch.isalnum() else "_" for ch in name)
        variants.append(create_model(f"Subtask_{tag}", **fields))
    if len(variants) == 1:
        item: Any = variants[0]
    else:
        item = Annotated[Union[tuple(variants)], Field(discriminator="agent")]  # noqa: UP007
    subtasks: Any = (list[item], Field(description="The subtasks, dependencies first."))
    if lean:
        return create_model("PlanOutput", subtasks=subtasks)
    final: Any = (str, Field(default="", description="Null, or the answer's form (no numbers)."))
    return create_model("PlanOutput", subtasks=subtasks, final_answer=final)


def to_plan(draft: BaseModel, executors: Mapping[str, Agent[Any]]) -> Plan:
    """The `Plan` a planner's output stands for; a lean plan's subtasks take their
    agent's description as instructions and the default plan_shaped and stakes."""
    subtasks = []
    for s in draft.subtasks:  # type: ignore[attr-defined]
        args = s.arguments
        arguments = args.model_dump() if isinstance(args, BaseModel) else dict(args)
        subtasks.append(
            Subtask(
                id=s.id,
                agent=s.agent,
                instructions=getattr(s, "instructions", None) or executors[s.agent].description,
                arguments=arguments,
                depends_on=tuple(getattr(s, "depends_on", ())),
                plan_shaped=getattr(s, "plan_shaped", False),
                stakes=Stakes(getattr(s, "stakes", Stakes.NORMAL)),
            )
        )
    return Plan(subtasks=tuple(subtasks), final_answer=getattr(draft, "final_answer", ""))
