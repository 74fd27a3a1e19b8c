"""`RunContext`: what tools and validators see of the run they are part of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic

from typing_extensions import TypeVar

from tiered._ledger import Ledger
from tiered._logging import get_logger
from tiered._usage import NO_USAGE, Usage

__all__ = ("DepsT", "RunContext")

DepsT = TypeVar("DepsT", default=Any)


@dataclass(slots=True, kw_only=True)
class RunContext(Generic[DepsT]):
    """Dependencies, usage so far and a bound logger, handed to every tool call."""

    deps: DepsT
    """Whatever the caller passed as `deps=` (a database, an HTTP client, settings)."""
    agent: str
    """Name of the agent whose turn this is."""
    ledger: Ledger
    """The run's ledger: `ctx.ledger.usage` is the whole run's usage so far."""
    usage: Usage = NO_USAGE
    """This agent run's usage so far."""
    turn: int = 0
    """Which model turn of this agent run we are in (1-based once running)."""
    subtask_id: str | None = None
    """The orchestrated subtask this run serves, if any."""
    dependencies: Mapping[str, Any] = field(default_factory=dict)
    """Typed outputs of the subtasks this one depends on, by subtask id."""
    input: Any = None
    """The run's validated input (what `validate_output` checks the output against)."""
    idempotency_key: str | None = None
    """For a tool with `side_effects=True` under a journal: a key stable across a crash
    and resume; pass it to an API that deduplicates."""
    effects: Any = None
    """Internal: the journal's log of side-effecting calls for this subtask."""
    _log: Any = field(default=None, repr=False)

    @property
    def log(self) -> Any:
        """A structlog logger bound to the agent (and subtask) of this run."""
        if self._log is None:
            self._log = get_logger(agent=self.agent, subtask_id=self.subtask_id)
        return self._log
