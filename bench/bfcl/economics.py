"""Routing economics on measured BFCL outcomes: every strategy replayed on the report half.

Each case ran on every tier, so a strategy's result is read off the outcomes rather
than simulated from rates: where it starts, whether the framework would see the
failure (an error, not a wrong answer), whether it escalates and what that costs. The
calibrated router and gain-aware escalation see only the calibration half.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tiered import CalibratedRouter, Tier
from tiered._calibrated import TierView
from tiered._calibration import TierCalibration
from tiered._confidence import GateOption, gate_options
from tiered._eval_report import CaseOutcome
from tiered._eval_report import _gated_as as gated_as

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


def _outcome(o: Outcome) -> CaseOutcome:
    """The row as `tiered eval` keeps it, for the confidence a gate reads."""
    defaults = {"model": "", "detail": "", "input_tokens": 0, "output_tokens": 0,
                "latency_s": 0.0, "turns": 0}  # fmt: skip
    return CaseOutcome.from_dict({**defaults, **o})


def _views(cal: Sequence[Outcome], tiers: Sequence[str], gates: bool) -> list[TierView]:
    """The router's view of each tier on the calibration cases; with `gates`, what each
    confidence gate did there (each case paired with the next tier's verdict)."""
    right = {(o["case_id"], o["tier"]): bool(o["succeeded"]) for o in cal}
    views = []
    for i, t in enumerate(tiers):
        mine = [o for o in cal if o["tier"] == t]
        c = _calibration(mine)
        up = tiers[i + 1] if i + 1 < len(tiers) else None
        options: tuple[GateOption, ...] = ()
        if gates and up is not None and any(o.get("confidence") is not None for o in mine):
            paired = [(gated_as(_outcome(o)), bool(o["succeeded"]), right[(o["case_id"], up)])
                      for o in mine if (o["case_id"], up) in right]  # fmt: skip
            options = tuple(gate_options(paired))
        views.append(
            TierView(tier=Tier(t), estimate=c.estimate(), detected_rate=c.detected_rate,
                     cost=c.equivalent_cost_per_case, gates=options,
                     gates_to=Tier(up) if up and options else None)
        )  # fmt: skip
    return views


Row = Mapping[str, Outcome]
"""One case: tier -> its outcome."""


def report_cases(
    outcomes: Sequence[Outcome], split: Mapping[str, str], tiers: Sequence[str]
) -> tuple[dict[str, dict[str, Outcome]], list[str]]:
    """(case -> tier -> outcome, the report-half cases every tier in `tiers` ran)."""
    table: dict[str, dict[str, Outcome]] = {}
    for o in outcomes:
        table.setdefault(o["case_id"], {})[o["tier"]] = o
    report = [c for c in table if split.get(c) == "report" and all(t in table[c] for t in tiers)]
    return table, report


def play(
    name: str,
    rows: Sequence[Row],
    tiers: Sequence[str],
    first: Callable[[str, Row], str],
    escalate: Callable[[str], bool],
    starts: Mapping[str, str],
    gate: Callable[[str], float | None] = lambda cat: None,
) -> Strategy:
    """One strategy read off the outcomes: start on `first(category, row)`; a visible
    failure goes one tier up where `escalate(category)`, and so does a reply under
    `gate(category)`."""
    ok = esc = 0
    cost = Decimal(0)
    for row in rows:
        cat = str(row[tiers[0]]["category"])
        tier = first(cat, row)
        o = row[tier]
        cost += Decimal(o["equivalent_cost"])
        i = tiers.index(tier)
        seen = o["failure"] not in (None, "wrong") and escalate(cat)
        g, conf = gate(cat), o.get("confidence")
        unsure = g is not None and not seen and conf is not None and conf < g
        if (seen or unsure) and i + 1 < len(tiers):
            esc += 1
            o = row[tiers[i + 1]]
            cost += Decimal(o["equivalent_cost"])
        ok += bool(o["succeeded"])
    return Strategy(name, len(rows), ok, cost, esc, dict(starts))


def replay(
    outcomes: Sequence[Outcome],
    split: Mapping[str, str],
    tiers: Sequence[str] = ("nano", "mini"),
    *,
    margin: float = 0.05,
    tolerance: float = 0.01,
    min_success: float = 0.95,
) -> list[Strategy]:
    """all-<tier>, rules + default escalation, calibrated (without and with confidence
    gates) + gain-aware, and the oracle."""
    table, report = report_cases(outcomes, split, tiers)
    calib = [o for o in outcomes if split.get(o["case_id"]) == "calibrate"]
    categories = sorted({str(table[c][tiers[0]]["category"]) for c in report})
    router = CalibratedRouter(min_success=min_success, tolerance=tolerance, margin=margin)
    start: dict[str, str] = {}
    gated: dict[str, tuple[str, float | None]] = {}
    gain: dict[str, bool] = {}
    for cat in categories:
        mine = [o for o in calib if o["category"] == cat]
        views = _views(mine, tiers, gates=False)
        start[cat] = str(router.choose(views, cat).tier.value)
        gain[cat] = views[1].estimate.mean > views[0].estimate.mean + margin
        decision = router.choose(_views(mine, tiers, gates=True), cat)
        gated[cat] = (str(decision.tier.value), decision.gate)

    def run(name: str, first: Any, escalate: Any, starts: Mapping[str, str],
            gate: Any = lambda cat: None) -> Strategy:  # fmt: skip
        return play(name, [table[c] for c in report], tiers, first, escalate, starts, gate)

    out = [run(f"all-{t}", lambda cat, row, t=t: t, lambda cat: False, {}) for t in tiers]
    out.append(run("rules + default escalation", lambda cat, row: tiers[0], lambda cat: True, {}))
    out.append(run("calibrated + gain-aware", lambda cat, row: start[cat], lambda cat: gain[cat],
                   start))  # fmt: skip
    out.append(run("calibrated + default escalation", lambda cat, row: start[cat],
                   lambda cat: True, start))  # fmt: skip
    shown = {c: t if g is None else f"{t} gated < {g:.2f}" for c, (t, g) in gated.items()}
    out.append(run("calibrated + confidence gate + gain-aware", lambda cat, row: gated[cat][0],
                   lambda cat: gain[cat], shown, lambda cat: gated[cat][1]))  # fmt: skip

    def cheapest_right(cat: str, row: Mapping[str, Outcome]) -> str:
        return next((t for t in tiers if row[t]["succeeded"]), tiers[0])

    out.append(run("oracle (cheapest right tier)", cheapest_right, lambda cat: False, {}))
    return out
