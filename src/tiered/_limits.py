"""`Limits`: every bound on a run's concurrency and time, checked when it is made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tiered._errors import UserError

__all__ = ("Limits",)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"Limits({name}={value!r}): must be a whole number of at least 1")


def _positive_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UserError(f"Limits({name}={value!r}): must be more than 0 seconds, or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Every limit of a run; None means unlimited. Bad values are a `UserError` at once."""

    concurrency: int = 16
    """Subtask attempts running at once, across the run (at least 1)."""
    per_model: int | Mapping[str, int] | None = None
    """Model calls in flight per model name (one number for all, or per name)."""
    subtask_timeout: float | None = None
    """Seconds one attempt may take before it counts as a timeout failure."""
    deadline: float | None = None
    """Seconds the whole run may take; then it stops cleanly with what is done."""
    max_decompose_depth: int = 1
    """How many times a subtask may be handed back to the planner, nested (0: never)."""

    def __post_init__(self) -> None:
        _positive_int("concurrency", self.concurrency)
        if isinstance(self.per_model, Mapping):
            for name, n in self.per_model.items():
                _positive_int(f"per_model[{name!r}]", n)
        elif self.per_model is not None:
            _positive_int("per_model", self.per_model)
        _positive_seconds("subtask_timeout", self.subtask_timeout)
        _positive_seconds("deadline", self.deadline)
        depth = self.max_decompose_depth
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise UserError(f"Limits(max_decompose_depth={depth!r}): must be 0 or more")

    def model_limit(self, name: str) -> int | None:
        """The in-flight cap for model `name`, or None."""
        per = self.per_model
        if per is None or isinstance(per, int):
            return per
        return per.get(name)
