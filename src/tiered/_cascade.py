"""The cascade arithmetic the calibrated router weighs: each tier as it sees it, and the
expected cost and success of starting on one tier (perhaps behind a confidence gate)
and escalating what fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from tiered._catalog import Tier
from tiered._confidence import GateOption
from tiered._learning import Estimate

__all__ = (
    "Start",
    "TierView",
    "cascade",
    "conditional_gain",
    "money",
    "success_worth",
    "worth_cascade",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TierView:
    """One tier as the router sees it: success estimate, visible-failure rate, cost."""

    tier: Tier
    estimate: Estimate
    detected_rate: float
    """Share of attempts that fail visibly, so the cascade can move on."""
    cost: Decimal | None
    """Mean dollars per attempt, when calibrated."""
    gates: tuple[GateOption, ...] = ()
    """What each confidence gate did on the calibration cases (`gate_options`)."""
    gates_to: Tier | None = None
    """The tier the gates' replies went up to (the next one calibrated)."""


def success_worth(views: list[TierView], factor: float) -> Decimal | None:
    """What one success is worth: `factor` x the dollars per success of the most expensive
    measured tier (the top rung, when calibrated). A step that buys success for more per
    success than that is dearer than running everything there."""
    priced = [v for v in views if v.cost is not None and v.estimate.mean > 0]
    if not priced:
        return None
    top = priced[-1]
    assert top.cost is not None
    return Decimal(str(factor)) * top.cost / Decimal(str(top.estimate.mean))


def conditional_gain(here: float, there: float) -> float:
    """P(there right | here wrong) if a task one tier solves the next solves too."""
    return max(0.0, there - here) / (1.0 - here) if here < 1 else 0.0


def money(d: Decimal) -> str:
    return f"${d:.5f}" if d < 1 else f"${d:.2f}"


def cascade(views: list[TierView], i: int, margin: float) -> tuple[Decimal, float]:
    """Expected (cost, success) of starting at views[i] and escalating visible failures
    to the next tier where it is better by `margin`."""
    v = views[i]
    cost, p = v.cost or Decimal(0), v.estimate.mean
    if i + 1 < len(views) and views[i + 1].estimate.mean > p + margin:
        rest_cost, rest_p = cascade(views, i + 1, margin)
        f = v.detected_rate
        return cost + Decimal(str(f)) * rest_cost, p + f * rest_p
    return cost, p


def worth_cascade(
    views: list[TierView],
    i: int,
    worth: Decimal,
    rescue: Callable[[Tier, Tier], float | None],
) -> tuple[Decimal, Decimal, float]:
    """(net value, cost, success) of starting at views[i] when a visible failure moves up
    only where the rescue is worth its price; `rescue` gives learned rescue rates."""
    v = views[i]
    cost, p = v.cost or Decimal(0), v.estimate.mean
    value = worth * Decimal(str(p)) - cost
    if i + 1 < len(views):
        up = views[i + 1]
        learned = rescue(up.tier, v.tier)
        r = learned if learned is not None else conditional_gain(p, up.estimate.mean)
        up_cost = up.cost or Decimal(0)
        gain = worth * Decimal(str(r)) - up_cost
        if gain > 0:
            f = Decimal(str(v.detected_rate))
            value += f * gain
            cost += f * up_cost
            p += v.detected_rate * r
    return value, cost, p


@dataclass(frozen=True, slots=True)
class Start:
    """One way to start: a tier, perhaps with a confidence gate, and what it is expected
    to cost and reach with its escalations."""

    view: TierView
    cost: Decimal
    success: float
    gate: GateOption | None = None
    up: Tier | None = None

    @property
    def per_success(self) -> Decimal:
        if self.success <= 0:
            return Decimal("Infinity")
        return self.cost / Decimal(str(self.success))

    def describe(self, *, chosen: bool = False) -> str:
        v, est = self.view, self.view.estimate
        head = (
            f"{v.tier.value}: {est.describe()}"
            if chosen
            else f"{v.tier.value} {100 * est.mean:.0f}%"
        )
        if self.gate is not None and self.up is not None:
            head += f", {self.gate.describe()} to {self.up.value}"
        cps = "n/a" if self.per_success.is_infinite() else money(self.per_success)
        reached = f" (cascade {100 * self.success:.0f}%)" if self.success != est.mean else ""
        return f"{head}{reached}, {cps} per success"
