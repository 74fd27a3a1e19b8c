"""What each tier has been seen to do: per-(agent, tier, category) success estimates.

`RoutingStats` keeps a Beta posterior per key with exponential forgetting: every new
observation first discounts the old ones by `0.5 ** (1 / half_life)`, so a model whose
success drops loses its standing within a few half-lives (about 50 observations at the
default). It persists as JSON beside the run journal and later runs load it.

An attempt that follows a failure (an escalation, or a retry with feedback) is not a
fair sample of what its tier does: it only sees the work a cheaper try got wrong. It
is kept apart, in an `after:<tier>` cell (and `<category>/after:<tier>` when the
subtask names a category), which is exactly what gain-aware escalation needs to know:
how often the next tier rescues this tier's failures. Each cell also keeps the mean
dollars per attempt (forgetting like the counts), so routing can weigh price.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tiered._catalog import Tier
from tiered._errors import UserError

__all__ = ("STATS_FILE", "Estimate", "RoutingStats", "after_category", "wilson_interval")

STATS_FILE = "routing-stats.json"
"""The stats file's name beside a run journal (`RoutingStats.beside(journal)`)."""

_Z95 = 1.959963984540054
_VERSION = 1


def wilson_interval(successes: float, n: float, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) for `successes` out of `n` trials.

    Good at small n and near 0 or 1, where the normal approximation says nonsense.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """A success-rate estimate: posterior mean, 95% interval and how much data it rests on."""

    mean: float
    """Posterior mean of the success probability (Beta(1, 1) prior)."""
    low: float
    """Lower end of the 95% interval."""
    high: float
    """Upper end of the 95% interval."""
    n: int
    """Observations recorded (before forgetting)."""
    weight: float = 0.0
    """Effective observations after forgetting (what the interval is computed on)."""

    def describe(self) -> str:
        """E.g. '92% ± 3 on 120 cases'."""
        half = round(100 * (self.high - self.low) / 2)
        return f"{100 * self.mean:.0f}% ± {half} on {self.n} cases"


_NO_DATA = Estimate(mean=0.5, low=0.0, high=1.0, n=0, weight=0.0)


@dataclass(slots=True)
class _Cell:
    successes: float = 0.0
    failures: float = 0.0
    n: int = 0
    updated: float = 0.0
    cost: float = 0.0
    """Forgetting sum of dollars over the attempts that reported one."""
    costed: float = 0.0
    """Forgetting count of those attempts."""


def _key(agent: str, tier: Tier | str, category: str | None) -> tuple[str, str, str]:
    return agent, str(getattr(tier, "value", tier)), category or ""


def after_category(tier: Tier | str, category: str | None = None) -> str:
    """The cell name for attempts that follow a failure on `tier` (e.g. 'after:nano', or
    'coding/after:nano' within a category)."""
    cell = f"after:{getattr(tier, 'value', tier)}"
    return f"{category}/{cell}" if category else cell


class RoutingStats:
    """Per-(agent, tier[, category]) success posteriors that forget, saved as JSON.

    `record` is what the orchestrator calls for every finished attempt; routers and
    the escalation policy read `estimate`.
    """

    def __init__(self, *, half_life: float = 25.0) -> None:
        if half_life <= 0:
            raise UserError(f"half_life must be positive (observations), not {half_life}")
        self.half_life = half_life
        self._decay = 0.5 ** (1 / half_life)
        self._cells: dict[tuple[str, str, str], _Cell] = {}
        self.autosave: Path | None = None
        """Where `record` writes the stats after each attempt (`load(..., autosave=True)`)."""

    def __len__(self) -> int:
        return len(self._cells)

    def record(
        self,
        agent: str,
        tier: Tier,
        succeeded: bool,
        category: str | None = None,
        *,
        after: Tier | None = None,
        cost: Decimal | float | None = None,
    ) -> None:
        """Count one finished attempt of `agent` on `tier` (and under `category`, if any),
        with its dollars when given.

        A categorised attempt also updates the agent's uncategorised cell, so the agent's
        overall estimate stays current. With `after` (the attempt followed a failure on
        that tier) only the `after:<tier>` cells are updated: see the module docstring.
        """
        if after is not None:
            keys = {_key(agent, tier, after_category(after, category))}
            keys.add(_key(agent, tier, after_category(after)))
        else:
            keys = {_key(agent, tier, category), _key(agent, tier, None)}
        for key in keys:
            cell = self._cells.setdefault(key, _Cell())
            cell.successes = cell.successes * self._decay + (1.0 if succeeded else 0.0)
            cell.failures = cell.failures * self._decay + (0.0 if succeeded else 1.0)
            if cost is not None:
                cell.cost = cell.cost * self._decay + float(cost)
                cell.costed = cell.costed * self._decay + 1.0
            cell.n += 1
            cell.updated = time.time()
        if self.autosave is not None:  # a crashed run keeps what it learned, like the journal
            self.save(self.autosave)

    def estimate(
        self, agent: str, tier: Tier, category: str | None = None, *, after: Tier | None = None
    ) -> Estimate:
        """The estimate for `agent` on `tier` (in `category`, or right after a failure on
        `after`); n=0 where nothing was seen."""
        cell = self._cell(agent, tier, category, after)
        if cell is None or cell.n == 0:
            return _NO_DATA
        weight = cell.successes + cell.failures
        low, high = wilson_interval(cell.successes, weight)
        mean = (cell.successes + 1) / (weight + 2)
        return Estimate(mean=mean, low=low, high=high, n=cell.n, weight=weight)

    def mean_cost(
        self, agent: str, tier: Tier, category: str | None = None, *, after: Tier | None = None
    ) -> Decimal | None:
        """Mean dollars per attempt of `agent` on `tier` (as `estimate` picks the cell),
        or None where no attempt reported its cost."""
        cell = self._cell(agent, tier, category, after)
        if cell is None or cell.costed <= 0:
            return None
        return Decimal(str(round(cell.cost / cell.costed, 10)))

    def _cell(
        self, agent: str, tier: Tier, category: str | None, after: Tier | None
    ) -> _Cell | None:
        """The cell `estimate` reads; a category's rescue cell falls back to the agent's."""
        if after is None:
            return self._cells.get(_key(agent, tier, category))
        found = self._cells.get(_key(agent, tier, after_category(after, category)))
        if found is None and category:
            found = self._cells.get(_key(agent, tier, after_category(after)))
        return found

    def rows(self) -> list[tuple[str, str, str, Estimate]]:
        """(agent, tier, category, estimate) for every cell, sorted."""
        return [
            (agent, tier, category, self.estimate(agent, Tier(tier), category or None))
            for agent, tier, category in sorted(self._cells)
        ]

    # --- persistence ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `save` writes."""
        return {
            "version": _VERSION,
            "half_life": self.half_life,
            "cells": [
                {
                    "agent": a,
                    "tier": t,
                    "category": c or None,
                    "successes": cell.successes,
                    "failures": cell.failures,
                    "n": cell.n,
                    "updated": cell.updated,
                    "cost": cell.cost,
                    "costed": cell.costed,
                }
                for (a, t, c), cell in sorted(self._cells.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutingStats:
        """Rebuild from `to_dict`'s output."""
        if data.get("version") != _VERSION:
            raise UserError(f"routing stats version {data.get('version')!r} is not {_VERSION}")
        stats = cls(half_life=float(data.get("half_life", 25.0)))
        for row in data.get("cells", ()):
            key = _key(row["agent"], row["tier"], row.get("category"))
            stats._cells[key] = _Cell(
                successes=float(row["successes"]),
                failures=float(row["failures"]),
                n=int(row["n"]),
                updated=float(row.get("updated", 0.0)),
                cost=float(row.get("cost", 0.0)),
                costed=float(row.get("costed", 0.0)),
            )
        return stats

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (a temporary file, then rename) so a reader never sees half."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, target)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, half_life: float = 25.0, autosave: bool = False
    ) -> RoutingStats:
        """Read `path`; a missing file gives empty stats (the first run). With `autosave`
        every `record` writes the file back (what `tiered run --journal` does)."""
        target = Path(path)
        stats = cls(half_life=half_life)
        if target.exists():
            try:
                data = json.loads(target.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UserError(f"cannot read routing stats {target}: {exc}") from exc
            stats = cls.from_dict(data)
        stats.autosave = target if autosave else None
        return stats

    @staticmethod
    def beside(journal: str | os.PathLike[str]) -> Path:
        """Where the stats of runs journaled at `journal` live: the same folder."""
        return Path(journal).parent / STATS_FILE
