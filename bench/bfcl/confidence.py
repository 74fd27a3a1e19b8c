"""How well a tier's confidence tells its right answers from its wrong ones, per category."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ("separation", "separation_table")


def separation(right: Sequence[float], wrong: Sequence[float]) -> float | None:
    """The chance a right answer was surer than a wrong one (ties half): the ROC AUC.
    0.5 is no signal; None without both kinds."""
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def separation_table(outcomes: Sequence[Mapping[str, Any]], tiers: Sequence[str]) -> str:
    """A Markdown table: per category and tier, median confidence right / wrong and AUC."""
    lines = ["category | tier | right | wrong | visible failures | median confidence right "
             "| wrong | AUC", "---|---|---|---|---|---|---|---"]  # fmt: skip
    cats = sorted({str(o["category"]) for o in outcomes})
    for cat in [*cats, None]:
        for tier in tiers:
            rows = [o for o in outcomes if o["tier"] == tier and cat in (None, o["category"])]
            known = [o for o in rows if o.get("confidence") is not None]
            if not known:
                continue
            right = [float(o["confidence"]) for o in known if o["succeeded"]]
            wrong = [float(o["confidence"]) for o in known if not o["succeeded"]]
            seen = sum(o["failure"] not in (None, "wrong") for o in rows)
            auc = separation(right, wrong)
            shown = "-" if auc is None else f"{auc:.2f}"

            def med(xs: list[float]) -> str:
                return f"{statistics.median(xs):.2f}" if xs else "-"

            lines.append(f"{cat or 'all'} | {tier} | {len(right)} | {len(wrong)} | {seen} | "
                         f"{med(right)} | {med(wrong)} | {shown}")  # fmt: skip
    return "\n".join(lines)


def gate_sweep(
    outcomes: Sequence[Mapping[str, Any]],
    split: Mapping[str, str],
    tiers: Sequence[str] = ("nano", "mini"),
    gates: Sequence[float] = (0.0, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 1.01),
) -> list[tuple[float, int, int, float, int]]:
    """The frontier a confidence gate draws on the report half, one gate for every case:
    start on the cheap tier, send visible failures and replies under the gate up. Rows of
    (gate, right, cases, cost vs all-<top tier>, sent up). A description of the signal,
    not a tuned strategy: the gate is not chosen here."""
    low, high = tiers[0], tiers[-1]
    table: dict[str, dict[str, Mapping[str, Any]]] = {}
    for o in outcomes:
        table.setdefault(str(o["case_id"]), {})[str(o["tier"])] = o
    report = [r for c, r in table.items() if split.get(c) == "report" and low in r and high in r]
    top = sum(float(r[high]["equivalent_cost"]) for r in report)
    rows = []
    for gate in gates:
        right = up = 0
        cost = 0.0
        for r in report:
            o = r[low]
            cost += float(o["equivalent_cost"])
            c = o.get("confidence")
            if o["failure"] not in (None, "wrong") or (c is not None and c < gate):
                up += 1
                o = r[high]
                cost += float(o["equivalent_cost"])
            right += bool(o["succeeded"])
        rows.append((gate, right, len(report), cost / top if top else 0.0, up))
    return rows
