"""The best any router that cannot see the answer can do on the simulated mixes.

It knows what no deployed router knows exactly: each kind of work's true per-tier
success rates, the verifier's true recall and false-alarm rate, and every price. For
each kind it may pick any start tier and, per tier, whether to escalate a flagged
output; the outcome model is the bench's (latent difficulty u: a tier is right iff
u < its rate; the verifier's draw is fixed per subtask, tier and transcript length, so
a same-tier retry repeats the first try's output and verdict and is never worth
buying; each tier's verdict is its own draw). Expected cost and success are computed exactly
over u's intervals, and the mix-level frontier (success against cost) is traced with a
Lagrange multiplier on success. What a deployed router pays above this bound is what it
does not know; what the bound pays above the oracle is knowledge no router can have
before running the call (which subtask is hard).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tiered import STANDARD_TIERS, Tier, Usage, default_catalog

__all__ = ("Plan", "known_rates_bound")

_TIERS = tuple(STANDARD_TIERS)
VERIFIER_TOKENS = (1_000, 60)


class _Kind(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def rates(self) -> Mapping[Tier, float]: ...
    @property
    def turns(self) -> int: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """One kind's handling: start tier, and whether a flagged output moves up, per tier."""

    start: int
    escalate: tuple[bool, bool, bool]

    def describe(self) -> str:
        """E.g. 'nano -> mini': where it starts and how far a flagged output climbs."""
        steps = [_TIERS[self.start].value]
        for i in range(self.start, len(_TIERS) - 1):
            if not self.escalate[i]:
                break
            steps.append(_TIERS[i + 1].value)
        return " -> ".join(steps)


def _attempt_cost(kind: _Kind, tier: Tier) -> float:
    spec = default_catalog().for_tier(tier)
    usage = Usage(
        input_tokens=kind.input_tokens * kind.turns, output_tokens=kind.output_tokens * kind.turns
    )
    return float(spec.cost(usage))


def _verifier_cost() -> float:
    spec = default_catalog().for_tier(Tier.NANO)
    return float(
        spec.cost(Usage(input_tokens=VERIFIER_TOKENS[0], output_tokens=VERIFIER_TOKENS[1]))
    )


def evaluate(kind: _Kind, plan: Plan, recall: float, false_alarm: float) -> tuple[float, float]:
    """Exact (expected dollars, P(right output accepted)) of `plan` on `kind`."""
    rates = [kind.rates[t] for t in _TIERS]
    costs = [_attempt_cost(kind, t) + _verifier_cost() for t in _TIERS]
    points = sorted({0.0, 1.0, *rates})
    cost = success = 0.0
    for low, high in itertools.pairwise(points):
        u = (low + high) / 2
        right = [u < r for r in rates]

        def attempt(i: int, right: list[bool] = right) -> tuple[float, float]:
            flag = false_alarm if right[i] else recall
            then = attempt(i + 1) if plan.escalate[i] and i + 1 < len(_TIERS) else (0.0, 0.0)
            ok = 1.0 if right[i] else 0.0
            return costs[i] + flag * then[0], (1 - flag) * ok + flag * then[1]

        c, p = attempt(plan.start)
        cost += (high - low) * c
        success += (high - low) * p
    return cost, success


def _plans() -> Iterator[Plan]:
    for start in range(len(_TIERS)):
        for escalate in itertools.product((False, True), repeat=len(_TIERS)):
            if escalate[-1] or any(escalate[:start]):
                continue  # only the tiers the plan can reach carry settings
            yield Plan(start, escalate)  # type: ignore[arg-type]


def _oracle(kind: _Kind) -> float:
    """Expected dollars of the cheapest right tier (nano where none is), no verifier."""
    r = [kind.rates[t] for t in _TIERS]
    c = [_attempt_cost(kind, t) for t in _TIERS]
    return r[0] * c[0] + (r[1] - r[0]) * c[1] + (r[2] - r[1]) * c[2] + (1 - r[2]) * c[0]


def known_rates_bound(
    kinds: Sequence[_Kind],
    shares: Mapping[str, float],
    *,
    recall: float = 0.9,
    false_alarm: float = 0.02,
    floor: float = 0.99,
) -> dict[str, Any]:
    """The frontier of per-kind plans chosen with the true rates, against all-flagship
    and the oracle (expected values per subtask), and its cheapest point at `floor`."""
    used = [k for k in kinds if shares.get(k.name, 0) > 0]
    table = {
        k.name: [(plan, *evaluate(k, plan, recall, false_alarm)) for plan in _plans()] for k in used
    }
    flagship_cost = sum(shares[k.name] * _attempt_cost(k, Tier.FLAGSHIP) for k in used)
    flagship_success = sum(shares[k.name] * k.rates[Tier.FLAGSHIP] for k in used)
    oracle = sum(shares[k.name] * _oracle(k) for k in used)
    points: dict[tuple[float, float], dict[str, Any]] = {}
    for step in range(0, 2001):
        worth = step * 0.002  # dollars a success is worth, 0 to $4
        cost = success = 0.0
        chosen = {}
        for k in used:
            plan, c, p = min(table[k.name], key=lambda x: (x[1] - worth * x[2], x[1]))
            cost += shares[k.name] * c
            success += shares[k.name] * p
            chosen[k.name] = plan.describe()
        point: dict[str, Any] = {
            "success_vs_flagship": success / flagship_success,
            "cost_vs_flagship": cost / flagship_cost,
            "cost_vs_oracle": cost / oracle,
            "plans": chosen,
        }
        points.setdefault((round(success / flagship_success, 4), round(cost, 6)), point)
    frontier = sorted(points.values(), key=lambda p: p["cost_vs_oracle"])
    reaching = [p for p in frontier if p["success_vs_flagship"] >= floor]
    return {
        "oracle_vs_flagship": oracle / flagship_cost,
        "floor": floor,
        "frontier": frontier,
        "best": reaching[0] if reaching else None,
    }
