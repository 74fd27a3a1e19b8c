"""Shared helpers for the orchestration tests: an Echo executor, a scripted ladder, plans."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from tiered import Agent, ModelRequest, ScriptedModel, Subtask, Tier, UserMessage, default_catalog
from tiered.models import Model


class Text(BaseModel):
    text: str


class Echo(Agent[Text]):
    """Echoes its input text in upper case."""

    instructions = "Upper-case the text."
    input_type = Text
    output_type = Text


Responder = Callable[[ModelRequest], Any]


def ladder(responder: Responder) -> dict[Tier, Model]:
    """Every tier answers through `responder`, metered at the published OpenAI prices."""
    cat = default_catalog()
    return {t: ScriptedModel(responder, spec=cat.for_tier(t)) for t in Tier}


def tier_of(request: ModelRequest, models: dict[Tier, Model]) -> Tier:
    """Which tier served `request` (each ScriptedModel keeps the requests it got)."""
    for t, m in models.items():
        assert isinstance(m, ScriptedModel)
        if any(r is request for r in m.requests):
            return t
    raise AssertionError("request not seen")


def last_user(request: ModelRequest) -> str:
    return next(m.content for m in reversed(request.messages) if isinstance(m, UserMessage))


def subtask(sid: str, *deps: str, agent: str = "Echo", text: str = "x") -> Subtask:
    return Subtask(
        id=sid, agent=agent, instructions=f"do {sid}", arguments={"text": text}, depends_on=deps
    )


def plan_json(*subtasks: dict[str, Any]) -> dict[str, Any]:
    return {"subtasks": list(subtasks), "final_answer": "a summary"}


def draft(sid: str, *deps: str, agent: str = "Echo", text: str = "x") -> dict[str, Any]:
    return {
        "id": sid,
        "agent": agent,
        "instructions": f"do {sid}",
        "arguments": {"text": text},
        "depends_on": list(deps),
        "plan_shaped": False,
        "stakes": "normal",
    }
