"""Calibration: what `tiered eval` measured each tier doing for one agent, as a JSON file.

An entry is keyed by a fingerprint of the agent's instructions, tool definitions and
output schema and of the model on each tier, so a changed prompt or model never reads
stale numbers. Per tier (and per category when cases carry one) it keeps cases,
successes, failures the framework would notice at run time, and cost per case.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tiered._agent import Agent
from tiered._catalog import Tier
from tiered._confidence import GateOption, Paired, gate_options
from tiered._errors import UserError
from tiered._learning import Estimate, wilson_interval
from tiered.models import Model

__all__ = (
    "CALIBRATION_FILE",
    "Calibration",
    "TierCalibration",
    "agent_fingerprint",
    "ordered_tiers",
)

CALIBRATION_FILE = "calibration.json"
"""Default calibration file name (`tiered eval` writes it in the current folder)."""

_VERSION = 1
_STANDARD = ("nano", "mini", "flagship")


def ordered_tiers(tiers: Any) -> list[Tier]:
    """Tiers cheapest first: nano, mini, flagship, then any others in the order given.

    A stand-in for `Ladder.tiers` where no ladder is at hand.
    """
    given = list(dict.fromkeys(tiers))
    standard = [t for name in _STANDARD for t in given if str(getattr(t, "value", t)) == name]
    return standard + [t for t in given if t not in standard]


def _tier_name(tier: Tier | str) -> str:
    return str(getattr(tier, "value", tier))


def agent_fingerprint(agent: Agent[Any], model_names: Mapping[Tier, str] | None = None) -> str:
    """A short hash of what decides an agent's behaviour: prompt, tools, output, models."""
    tools = []
    for t in agent.tools:
        d = t.definition()
        tools.append({"name": d.name, "description": d.description, "parameters": d.parameters})
    material = {
        "instructions": agent.instructions,
        "tools": tools,
        "output": agent.output_schema,
        "models": {_tier_name(k): v for k, v in sorted((model_names or {}).items())},
    }
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def model_names(models: Mapping[Tier, Model]) -> dict[Tier, str]:
    """The model name on each tier of `models`."""
    return {tier: m.spec.name for tier, m in models.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class TierCalibration:
    """One tier's measured record on one agent's cases (or one category of them)."""

    n: int
    """Cases run."""
    successes: int
    """Cases the check accepted."""
    detected_failures: int = 0
    """Failed cases the framework itself would notice (an error, invalid output), which
    an escalation policy can react to; the rest are wrong answers it cannot see."""
    cost_per_case: Decimal = Decimal(0)
    """Mean dollars per case at the model's own prices."""
    equivalent_cost_per_case: Decimal = Decimal(0)
    """Mean dollars per case at the OpenAI-equivalent prices."""
    latency_p50_s: float = 0.0
    model: str = ""
    after_failures: int = 0
    """Cases the tier below this one failed (each tier ran every case)."""
    rescued: int = 0
    """Of those, the cases this tier got right: what escalating to it rescues."""
    paired: tuple[Paired, ...] = ()
    """Per case the tier above also ran: (this tier's `AgentResult.confidence`, None for a
    visible failure; right here; right above), what a confidence gate is weighed on.
    Empty where the model reports no token probabilities."""

    @property
    def rate(self) -> float:
        """Observed success rate (0 with no cases)."""
        return self.successes / self.n if self.n else 0.0

    @property
    def detected_rate(self) -> float:
        """Share of cases that failed visibly (escalation can follow)."""
        return self.detected_failures / self.n if self.n else 0.0

    def estimate(self) -> Estimate:
        """The success estimate with its Wilson 95% interval."""
        low, high = wilson_interval(self.successes, self.n)
        mean = self.rate if self.n else 0.5
        return Estimate(mean=mean, low=low, high=high, n=self.n, weight=float(self.n))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (decimals as strings)."""
        d = asdict(self)
        d["paired"] = [list(p) for p in self.paired]
        d["cost_per_case"] = str(self.cost_per_case)
        d["equivalent_cost_per_case"] = str(self.equivalent_cost_per_case)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TierCalibration:
        """Inverse of `to_dict`."""
        return cls(
            n=int(d["n"]),
            successes=int(d["successes"]),
            detected_failures=int(d.get("detected_failures", 0)),
            cost_per_case=Decimal(str(d.get("cost_per_case", "0"))),
            equivalent_cost_per_case=Decimal(str(d.get("equivalent_cost_per_case", "0"))),
            latency_p50_s=float(d.get("latency_p50_s", 0.0)),
            model=str(d.get("model", "")),
            after_failures=int(d.get("after_failures", 0)),
            rescued=int(d.get("rescued", 0)),
            paired=tuple(_paired(p) for p in d.get("paired") or ()),
        )

    def gates(self) -> list[GateOption]:
        """What each confidence gate did on these cases (`gate_options`)."""
        return gate_options(self.paired)


def _paired(row: Any) -> Paired:
    confidence, here, above = row
    return (None if confidence is None else float(confidence), bool(here), bool(above))


@dataclass(slots=True, kw_only=True)
class AgentCalibration:
    """Every tier's record for one agent fingerprint, overall and per category."""

    agent: str
    models: dict[str, str]
    tiers: dict[str, TierCalibration] = field(default_factory=dict)
    categories: dict[str, dict[str, TierCalibration]] = field(default_factory=dict)

    def for_category(self, category: str | None) -> dict[str, TierCalibration]:
        """The category's tiers where it was measured, else the agent's overall ones."""
        if category is not None and category in self.categories:
            return self.categories[category]
        return self.tiers


class Calibration:
    """The calibration file: agent fingerprint -> per-tier (and per-category) records."""

    def __init__(self, entries: Mapping[str, AgentCalibration] | None = None) -> None:
        self.entries: dict[str, AgentCalibration] = dict(entries or {})
        self._found: weakref.WeakKeyDictionary[
            Agent[Any], dict[tuple[Any, ...], AgentCalibration | None]
        ] = weakref.WeakKeyDictionary()
        """Lookups already made, per agent: the router asks once per subtask."""

    def lookup(self, agent: Agent[Any], models: Mapping[Tier, Model]) -> AgentCalibration | None:
        """The entry for this agent on these models, or None (not calibrated, or stale).

        An evaluation of some of the tiers (`tiered eval --tiers nano,mini`) serves a
        ladder that has more, as long as those tiers run the same models; the entry that
        covers most of the ladder's tiers wins."""
        names = model_names(models)
        key = (agent.instructions, len(self.entries), *sorted(names.items()))
        found = self._found.setdefault(agent, {})
        if key not in found:
            found[key] = self._search(agent, names)
        return found[key]

    def _search(self, agent: Agent[Any], names: Mapping[Tier, str]) -> AgentCalibration | None:
        tiers = list(names)
        for size in range(len(tiers), 0, -1):
            for subset in itertools.combinations(tiers, size):
                found = self.entries.get(agent_fingerprint(agent, {t: names[t] for t in subset}))
                if found is not None:
                    return found
        return None

    def put(self, fingerprint: str, entry: AgentCalibration) -> None:
        """Add or replace one agent's entry."""
        self.entries[fingerprint] = entry
        self._found.clear()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `save` writes."""
        return {
            "version": _VERSION,
            "entries": {
                fp: {
                    "agent": e.agent,
                    "models": e.models,
                    "tiers": {t: c.to_dict() for t, c in e.tiers.items()},
                    "categories": {
                        cat: {t: c.to_dict() for t, c in tiers.items()}
                        for cat, tiers in e.categories.items()
                    },
                }
                for fp, e in sorted(self.entries.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of `to_dict`; refuses another version."""
        if data.get("version") != _VERSION:
            raise UserError(f"calibration version {data.get('version')!r} is not {_VERSION}")
        entries = {}
        for fp, e in (data.get("entries") or {}).items():
            entries[fp] = AgentCalibration(
                agent=e["agent"],
                models=dict(e.get("models") or {}),
                tiers={t: TierCalibration.from_dict(c) for t, c in e["tiers"].items()},
                categories={
                    cat: {t: TierCalibration.from_dict(c) for t, c in tiers.items()}
                    for cat, tiers in (e.get("categories") or {}).items()
                },
            )
        return cls(entries)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        """Read a calibration file; a missing one is empty (nothing calibrated yet)."""
        target = Path(path)
        if not target.exists():
            return cls()
        try:
            return cls.from_dict(json.loads(target.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot read calibration file {target}: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically, keeping entries of other agents already in the file."""
        target = Path(path)
        merged = Calibration.load(target) if target.exists() else Calibration()
        merged.entries.update(self.entries)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(merged.to_dict(), f, indent=1)
        os.replace(tmp, target)
