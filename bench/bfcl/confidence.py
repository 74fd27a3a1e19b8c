"""How well a tier's confidence tells its right answers from its wrong ones, per category."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench.bfcl.economics import play, report_cases

__all__ = ("gate_sweep", "separation", "separation_table")


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
    pair = (tiers[0], tiers[-1])
    table, report = report_cases(outcomes, split, pair)
    rows = [table[c] for c in report]
    top = play("all-top", rows, pair, lambda cat, row: pair[1], lambda cat: False, {})
    out = []
    for g in gates:

        def gate(cat: str, g: float = g) -> float:
            return g

        s = play("gated", rows, pair, lambda cat, row: pair[0], lambda cat: True, {}, gate)
        share = float(s.equivalent_cost / top.equivalent_cost) if top.equivalent_cost else 0.0
        out.append((g, s.successes, s.n, share, s.escalations))
    return out
