"""Verifiers: an optional check on a subtask's output, in Python or by a verifier agent.

A verifier returns None to accept, or a reason to reject; a rejection counts as a
failed attempt and goes to the escalation policy.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._ledger import Ledger
from tiered._plan import Subtask
from tiered.models import Model

__all__ = ("AgentCheck", "Check", "run_check")

Check = Callable[[Subtask, Any], "str | Awaitable[str | None] | None"]
"""A Python check: `(subtask, output) -> None` to accept or a rejection reason."""


class AgentCheck:
    """Asks a verifier agent whether an output does its subtask.

    The agent's output must have a boolean `passed` (or `ok`) and may carry `problems`
    (a list) or `reason`; its input gets `task` and `output` fields.
    """

    def __init__(self, agent: Agent[Any], *, tier: Tier | None = None) -> None:
        self.agent = agent
        self.tier = tier

    async def check(
        self, subtask: Subtask, output: Any, *, models: Mapping[Tier, Model] | None, ledger: Ledger
    ) -> str | None:
        """Run the verifier; None when it passes, else its problems joined."""
        rendered = output.model_dump() if isinstance(output, BaseModel) else output
        payload = {"task": subtask.instructions, "output": json.dumps(rendered, default=str)}
        arg: Any = payload if self.agent.input_type is not str else json.dumps(payload)
        result = await self.agent.run(arg, models=models, ledger=ledger, tier=self.tier)
        verdict = result.output
        passed = getattr(verdict, "passed", getattr(verdict, "ok", None))
        if passed is None:
            raise TypeError(
                f"verifier agent {self.agent.name!r} must output a model with a `passed` field"
            )
        if passed:
            return None
        problems = getattr(verdict, "problems", None) or [getattr(verdict, "reason", "rejected")]
        return "; ".join(str(p) for p in problems)


async def run_check(
    check: Check | AgentCheck,
    subtask: Subtask,
    output: Any,
    *,
    models: Mapping[Tier, Model] | None,
    ledger: Ledger,
) -> str | None:
    """Run either kind of verifier and return its rejection reason, if any."""
    if isinstance(check, AgentCheck):
        return await check.check(subtask, output, models=models, ledger=ledger)
    verdict = check(subtask, output)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return verdict
