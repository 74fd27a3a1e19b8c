"""`InputAwareAgent`: an agent whose output validator can read the run's validated input.

Private to the ready-made agents: it fills a gap in `Agent` (no way for `validate_output`
to see the input) that belongs in the core, e.g. as `RunContext.input`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from tiered import Agent, AgentResult

__all__ = ("InputAwareAgent",)

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)

_run_input: ContextVar[BaseModel | None] = ContextVar("tiered_agents_run_input", default=None)
"""The validated input of the agent run under way in this task (validators run in it)."""


class InputAwareAgent(Agent[OutputT], Generic[InputT, OutputT]):
    """Validates the input before the loop and keeps it where `validate_output` can see it.

    `Agent.validate_output` receives only the output and the `RunContext`; checks such as
    "the label is one of the input's labels" need the input too. A context variable keeps
    concurrent runs of one agent instance apart.
    """

    input_type: type[InputT]
    output_type: type[OutputT]

    async def run(self, input: Any, **kwargs: Any) -> AgentResult[OutputT]:
        """`Agent.run`, with the validated input visible to `run_input()` meanwhile."""
        validated = self.validate_input(input)
        token = _run_input.set(validated)
        try:
            return await super().run(validated, **kwargs)
        finally:
            _run_input.reset(token)

    def run_input(self) -> InputT:
        """The validated input of the run in progress (call from `validate_output`)."""
        value = _run_input.get()
        if not isinstance(value, self.input_type):
            raise RuntimeError(f"{type(self).__name__}.run_input() called outside its run")
        return value
