"""Routing economics on measured BFCL outcomes: every strategy replayed on the report half.

Each case ran on every tier, so a strategy's result is read off the outcomes rather
than simulated from rates: where it starts, whether the framework would see the
failure (an error, not a wrong answer), whether it escalates and what that costs. The
calibrated router and gain-aware escalation see only the calibration half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tiered import CalibratedRouter, Tier
from tiered._calibrated import TierView
from tiered._calibration import TierCalibration

__all__ = ("Strategy", "replay")

Outcome = Mapping[str, Any]
"""One `CaseOutcome.to_dict()` from `tiered eval --json`."""


@dataclass(frozen=True, slots=True)
class Strategy:
    """One routing strategy's result on a set of cases."""

    name: str
    n: int
    successes: int
    equivalent_cost: Decimal
    escalations: int
    starts: Mapping[str, str]
    """Category -> starting tier, for routers that choose per category."""

    @property
    def accuracy(self) -> float:
        """Share of cases right."""
        return self.successes / self.n if self.n else 0.0


def _calibration(outcomes: Sequence[Outcome]) -> TierCalibration:
    n = len(outcomes)
    return TierCalibration(
        n=n,
        successes=sum(bool(o["succeeded"]) for o in outcomes),
        detected_failures=sum(o["failure"] not in (None, "wrong") for o in outcomes),
        cost_per_case=sum((Decimal(o["cost"]) for o in outcomes), Decimal(0)) / max(1, n),
        equivalent_cost_per_case=sum((Decimal(o["equivalent_cost"]) for o in outcomes),
                                     Decimal(0)) / max(1, n),
    )  # fmt: skip


def _views(cal: Sequence[Outcome], tiers: Sequence[str]) -> list[TierView]:
    views = []
    for t in tiers:
        c = _calibration([o for o in cal if o["tier"] == t])
        e = c.estimate()
        views.append(
            TierView(tier=Tier(t), estimate=e, detected_rate=c.detected_rate,
                     cost=c.equivalent_cost_per_case)
        )  # fmt: skip
    return views


def replay(
    outcomes: Sequence[Outcome],
    split: Mapping[str, str],
    tiers: Sequence[str] = ("nano", "mini"),
    *,
    margin: float = 0.05,
    tolerance: float = 0.01,
    min_success: float = 0.95,
) -> list[Strategy]:
    """all-<tier>, rules + default escalation, calibrated + gain-aware, and the oracle."""
    table: dict[str, dict[str, Outcome]] = {}
    for o in outcomes:
        table.setdefault(o["case_id"], {})[o["tier"]] = o
    report = [c for c in table if split.get(c) == "report" and all(t in table[c] for t in tiers)]
    calib = [o for o in outcomes if split.get(o["case_id"]) == "calibrate"]
    categories = sorted({str(table[c][tiers[0]]["category"]) for c in report})
    router = CalibratedRouter(min_success=min_success, tolerance=tolerance, margin=margin)
    start: dict[str, str] = {}
    gain: dict[str, bool] = {}
    for cat in categories:
        views = _views([o for o in calib if o["category"] == cat], tiers)
        start[cat] = str(router.choose(views, cat).tier.value)
        gain[cat] = views[1].estimate.mean > views[0].estimate.mean + margin

    def run(name: str, first: Any, escalate: Any, starts: Mapping[str, str]) -> Strategy:
        ok = esc = 0
        cost = Decimal(0)
        for c in report:
            row = table[c]
            cat = str(row[tiers[0]]["category"])
            tier = first(cat, row)
            o = row[tier]
            cost += Decimal(o["equivalent_cost"])
            i = tiers.index(tier)
            if o["failure"] not in (None, "wrong") and i + 1 < len(tiers) and escalate(cat):
                esc += 1
                o = row[tiers[i + 1]]
                cost += Decimal(o["equivalent_cost"])
            ok += bool(o["succeeded"])
        return Strategy(name, len(report), ok, cost, esc, dict(starts))

    out = [run(f"all-{t}", lambda cat, row, t=t: t, lambda cat: False, {}) for t in tiers]
    out.append(run("rules + default escalation", lambda cat, row: tiers[0], lambda cat: True, {}))
    out.append(run("calibrated + gain-aware", lambda cat, row: start[cat], lambda cat: gain[cat],
                   start))  # fmt: skip
    out.append(run("calibrated + default escalation", lambda cat, row: start[cat],
                   lambda cat: True, start))  # fmt: skip

    def cheapest_right(cat: str, row: Mapping[str, Outcome]) -> str:
        return next((t for t in tiers if row[t]["succeeded"]), tiers[0])

    out.append(run("oracle (cheapest right tier)", cheapest_right, lambda cat: False, {}))
    return out
