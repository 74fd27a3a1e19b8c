"""What an evaluation measured: per-case outcomes, per-tier summaries, the calibration.

Success rates carry a Wilson 95% interval; cost is given per case and per success, at
the models' own prices and at OpenAI-equivalent prices (what the same tokens would
cost on the OpenAI model each tier stands in for).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from pydantic_core import to_jsonable_python

from tiered._agent import Agent
from tiered._calibration import (
    AgentCalibration,
    Calibration,
    TierCalibration,
    agent_fingerprint,
)
from tiered._catalog import Tier
from tiered._confidence import Paired
from tiered._learning import wilson_interval

__all__ = ("CaseOutcome", "EvalReport", "TierSummary")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseOutcome:
    """One case on one tier: pass or fail (and why), tokens, dollars, seconds."""

    case_id: str
    category: str | None
    tier: Tier
    model: str
    succeeded: bool
    failure: str | None
    """None on success; 'wrong' when the check rejected the output; else the failure kind
    (output_invalid, max_turns, model_error, timeout...)."""
    detail: str
    cost: Decimal
    equivalent_cost: Decimal
    input_tokens: int
    output_tokens: int
    latency_s: float
    turns: int
    output: Any = None
    confidence: float | None = None
    """The run's `AgentResult.confidence` (None: failed, or no token probabilities)."""

    @property
    def detected(self) -> bool:
        """A failure the framework sees at run time (not merely a wrong answer)."""
        return self.failure is not None and self.failure != "wrong"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        d = {k: getattr(self, k) for k in self.__slots__}
        d["tier"] = self.tier.value
        d["cost"], d["equivalent_cost"] = str(self.cost), str(self.equivalent_cost)
        d["latency_s"] = round(self.latency_s, 4)
        d["output"] = to_jsonable_python(self.output, fallback=str)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaseOutcome:
        """Inverse of `to_dict` (the output stays as JSON)."""
        fields = {k: d[k] for k in cls.__slots__ if k in d}
        fields["tier"] = Tier(d["tier"])
        fields["cost"] = Decimal(str(d["cost"]))
        fields["equivalent_cost"] = Decimal(str(d["equivalent_cost"]))
        return cls(**fields)


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@dataclass(frozen=True, slots=True, kw_only=True)
class TierSummary:
    """One tier over a set of cases."""

    tier: Tier
    model: str
    n: int
    successes: int
    low: float
    high: float
    cost: Decimal
    equivalent_cost: Decimal
    latency_p50_s: float
    latency_p95_s: float
    input_tokens: int
    output_tokens: int
    failures: Mapping[str, int]
    detected_failures: int

    @classmethod
    def of(cls, tier: Tier, model: str, outcomes: Sequence[CaseOutcome]) -> TierSummary:
        """Summarise the outcomes of one tier."""
        n = len(outcomes)
        ok = sum(o.succeeded for o in outcomes)
        low, high = wilson_interval(ok, n)
        latencies = [o.latency_s for o in outcomes]
        return cls(
            tier=tier,
            model=model,
            n=n,
            successes=ok,
            low=low,
            high=high,
            cost=sum((o.cost for o in outcomes), Decimal(0)),
            equivalent_cost=sum((o.equivalent_cost for o in outcomes), Decimal(0)),
            latency_p50_s=_percentile(latencies, 50),
            latency_p95_s=_percentile(latencies, 95),
            input_tokens=sum(o.input_tokens for o in outcomes),
            output_tokens=sum(o.output_tokens for o in outcomes),
            failures=dict(Counter(o.failure for o in outcomes if o.failure).most_common()),
            detected_failures=sum(o.detected for o in outcomes),
        )

    @property
    def rate(self) -> float:
        """Share of cases that passed."""
        return self.successes / self.n if self.n else 0.0

    def per_case(self, equivalent: bool = False) -> Decimal:
        """Mean dollars per case."""
        total = self.equivalent_cost if equivalent else self.cost
        return total / self.n if self.n else Decimal(0)

    def per_success(self, equivalent: bool = False) -> Decimal | None:
        """Dollars per passing case (None with no passes)."""
        total = self.equivalent_cost if equivalent else self.cost
        return total / self.successes if self.successes else None

    def calibration(self) -> TierCalibration:
        """The record the router reads."""
        return TierCalibration(
            n=self.n,
            successes=self.successes,
            detected_failures=self.detected_failures,
            cost_per_case=self.per_case(),
            equivalent_cost_per_case=self.per_case(equivalent=True),
            latency_p50_s=self.latency_p50_s,
            model=self.model,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, with the derived rates and per-case/per-success dollars."""
        per_s, eq_per_s = self.per_success(), self.per_success(equivalent=True)
        return {
            "tier": self.tier.value,
            "model": self.model,
            "n": self.n,
            "successes": self.successes,
            "success_rate": round(self.rate, 4),
            "ci95": [round(self.low, 4), round(self.high, 4)],
            "cost_per_case": str(self.per_case()),
            "cost_per_success": None if per_s is None else str(per_s),
            "equivalent_cost_per_case": str(self.per_case(equivalent=True)),
            "equivalent_cost_per_success": None if eq_per_s is None else str(eq_per_s),
            "latency_p50_s": round(self.latency_p50_s, 3),
            "latency_p95_s": round(self.latency_p95_s, 3),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "failures": dict(self.failures),
        }


def _usd(d: Decimal | None) -> str:
    if d is None:
        return "-"
    return f"${d:.6f}" if d < Decimal("0.01") else f"${d:.4f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalReport:
    """Every outcome of an evaluation, with summaries per tier and per category."""

    name: str
    agent: Agent[Any]
    models: Mapping[Tier, str]
    tiers: tuple[Tier, ...]
    outcomes: tuple[CaseOutcome, ...]

    @property
    def categories(self) -> list[str]:
        """Categories the cases carry, in first-seen order."""
        return list(dict.fromkeys(o.category for o in self.outcomes if o.category))

    def summary(self, category: str | None = None) -> list[TierSummary]:
        """Per-tier summaries, over all cases or one category's."""
        out = []
        for tier in self.tiers:
            picked = [
                o
                for o in self.outcomes
                if o.tier == tier and (category is None or o.category == category)
            ]
            if picked:
                out.append(TierSummary.of(tier, self.models[tier], picked))
        return out

    @property
    def fingerprint(self) -> str:
        """The calibration key: agent prompt, tools, output type and model names."""
        return agent_fingerprint(self.agent, self.models)

    def calibration(self) -> Calibration:
        """This evaluation as a calibration (one agent entry, with its categories), each
        tier with what it rescued of the tier below's failures on the same cases."""
        entry = AgentCalibration(
            agent=self.agent.name,
            models={t.value: m for t, m in self.models.items()},
            tiers=self._calibrated(None),
            categories={c: self._calibrated(c) for c in self.categories},
        )
        return Calibration({self.fingerprint: entry})

    def _calibrated(self, category: str | None) -> dict[str, TierCalibration]:
        picked = [o for o in self.outcomes if category is None or o.category == category]
        won = {(o.case_id, o.tier): o.succeeded for o in picked}
        out: dict[str, TierCalibration] = {}
        below: Tier | None = None
        for s in self.summary(category):
            cal = s.calibration()
            if below is not None:
                lost = [c for (c, t), ok in won.items() if t == below and not ok]
                ran = [c for c in lost if (c, s.tier) in won]
                rescued = sum(won[(c, s.tier)] for c in ran)
                cal = replace(cal, after_failures=len(ran), rescued=rescued)
                lower = out[below.value]
                out[below.value] = replace(lower, paired=_paired(picked, below, s.tier, won))
            out[s.tier.value] = cal
            below = s.tier
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for `--json`: summaries, categories and every outcome."""
        return {
            "name": self.name,
            "agent": self.agent.name,
            "fingerprint": self.fingerprint,
            "models": {t.value: m for t, m in self.models.items()},
            "tiers": [s.to_dict() for s in self.summary()],
            "categories": {c: [s.to_dict() for s in self.summary(c)] for c in self.categories},
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    def _confidences(self, category: str | None, tier: Tier) -> str:
        """Median confidence of the right and of the wrong answers: whether a gate could
        tell them apart ("-" where the model reports none)."""
        picked = [
            (o.succeeded, o.confidence)
            for o in self.outcomes
            if o.tier == tier and o.confidence is not None and category in (None, o.category)
        ]
        if not picked:
            return "-"
        right = [c for ok, c in picked if ok]
        wrong = [c for ok, c in picked if not ok]
        return f"{_median(right)} / {_median(wrong)}"

    def table(self) -> str:
        """A plain-text table: one row per tier (and per category and tier)."""
        header = (
            "scope", "tier", "n", "success", "95% CI", "$/case", "$/success",
            "OpenAI-eq $/case", "OpenAI-eq $/success", "p50 s", "p95 s", "tokens/case",
            "confidence right/wrong", "failures",
        )  # fmt: skip
        rows: list[tuple[str, ...]] = [header]
        scopes: list[str | None] = [None, *self.categories]
        for scope in scopes:
            for s in self.summary(scope):
                fails = ", ".join(f"{k} {v}" for k, v in s.failures.items()) or "-"
                rows.append(
                    (
                        scope or "all",
                        s.tier.value,
                        str(s.n),
                        f"{100 * s.rate:.0f}%",
                        f"{100 * s.low:.0f}-{100 * s.high:.0f}%",
                        _usd(s.per_case()),
                        _usd(s.per_success()),
                        _usd(s.per_case(equivalent=True)),
                        _usd(s.per_success(equivalent=True)),
                        f"{s.latency_p50_s:.2f}",
                        f"{s.latency_p95_s:.2f}",
                        f"{(s.input_tokens + s.output_tokens) / max(1, s.n):,.0f}",
                        self._confidences(scope, s.tier),
                        fails,
                    )
                )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        )


def _median(values: Sequence[float]) -> str:
    return f"{_percentile(values, 50):.2f}" if values else "-"


def _paired(
    outcomes: Sequence[CaseOutcome], tier: Tier, above: Tier, won: Mapping[tuple[str, Tier], bool]
) -> tuple[Paired, ...]:
    """(confidence, right, right above) for each case `tier` ran that `above` ran too;
    none at all when no run on `tier` reported a confidence (nothing to gate on)."""
    rows = [o for o in outcomes if o.tier == tier and (o.case_id, above) in won]
    if all(o.confidence is None for o in rows):
        return ()
    return tuple((_gated_as(o), o.succeeded, won[(o.case_id, above)]) for o in rows)


def _gated_as(outcome: CaseOutcome) -> float | None:
    """The confidence a gate reads: None (always sent up) for a visible failure, 1.0 (kept,
    as the runtime keeps a reply it cannot judge) where none was reported."""
    if outcome.detected:
        return None
    return 1.0 if outcome.confidence is None else outcome.confidence
