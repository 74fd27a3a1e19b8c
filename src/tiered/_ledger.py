"""The run ledger: every model call's usage and dollars, checked against a budget.

Money lives in one place: each call is booked once as a `Charge`, and every total
(an attempt, a subtask, a tier, the run) is a sum of those charges. `collect_charges()`
gathers the charges booked in the current task and the tasks it starts, so the
orchestrator can hand an attempt exactly its own calls.
A call on a model with no known price (a self-hosted model that names no OpenAI model
it stands in for) is booked at $0 but flagged (`Charge.priced`, `unpriced_requests`),
so a report can say "no price known"; a dollar budget over such a model is refused
up front (`Ledger.require_prices`) instead of silently never running out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from tiered._catalog import STANDARD_TIERS, ModelSpec, Tier, default_catalog
from tiered._errors import BudgetExceeded, UserError
from tiered._usage import Usage

__all__ = ("Budget", "Charge", "Ledger", "TierTotals", "collect_charges")

_collector: ContextVar[list[Charge] | None] = ContextVar("tiered_charges", default=None)


@contextmanager
def collect_charges() -> Iterator[list[Charge]]:
    """Gather every charge booked inside the block (child tasks included) into a list.

    Blocks nest: an inner block takes the charges booked inside it, the outer one keeps
    the rest.
    """
    charges: list[Charge] = []
    token = _collector.set(charges)
    try:
        yield charges
    finally:
        _collector.reset(token)


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Limits for one run; None means unlimited. Checked before every model call."""

    usd: Decimal | None = None
    """Dollars, at the catalog's prices (a local model's OpenAI-equivalent when priced $0)."""
    tokens: int | None = None
    """Input plus output tokens."""
    requests: int | None = None
    """Model requests."""

    def __post_init__(self) -> None:
        if self.usd is not None and not isinstance(self.usd, Decimal):
            object.__setattr__(self, "usd", Decimal(str(self.usd)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Charge:
    """One model call as the ledger saw it."""

    model: str
    tier: Tier
    usage: Usage
    cost: Decimal
    """What the call cost at its model's own prices ($0 for a local model)."""
    equivalent_cost: Decimal
    """What the same tokens cost on the OpenAI model this one stands in for."""
    flagship_cost: Decimal
    """What the same tokens would have cost on the flagship (the counterfactual)."""
    priced: bool = True
    """False when no price is known for the model (nor an equivalent): the costs above
    are $0 because nobody knows them, not because the call was free."""


@dataclass(slots=True, kw_only=True)
class TierTotals:
    """Usage and dollars summed over one tier."""

    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    equivalent_cost: Decimal = Decimal(0)
    unpriced_requests: int = 0
    """Calls on this tier whose price is unknown (booked at $0)."""


class Ledger:
    """Records charges and enforces a `Budget`. One per run; share it across agents."""

    __slots__ = ("_by_tier", "_equivalents", "_flagship", "budget", "charges", "usage")

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        flagship: ModelSpec | None = None,
        equivalents: dict[str, ModelSpec] | None = None,
    ) -> None:
        cat = default_catalog()
        self.budget = budget or Budget()
        self._flagship = flagship or cat.for_tier(Tier.FLAGSHIP)
        self._equivalents = equivalents if equivalents is not None else dict(cat)
        if flagship is not None:  # the planner's model: a dollar budget needs its price
            self.require_prices((flagship,))
        self.charges: list[Charge] = []
        self.usage = Usage()
        self._by_tier: dict[Tier, TierTotals] = {}

    @property
    def cost(self) -> Decimal:
        """Dollars spent at the models' own prices."""
        return sum((t.cost for t in self._by_tier.values()), Decimal(0))

    @property
    def equivalent_cost(self) -> Decimal:
        """Dollars the same calls would cost on the OpenAI models they stand in for."""
        return sum((t.equivalent_cost for t in self._by_tier.values()), Decimal(0))

    @property
    def flagship_cost(self) -> Decimal:
        """The counterfactual: dollars had every call gone to the flagship."""
        return sum((c.flagship_cost for c in self.charges), Decimal(0))

    def by_tier(self, order: Sequence[Tier] = STANDARD_TIERS) -> dict[Tier, TierTotals]:
        """Totals per tier in ladder `order` (cheapest first); tiers not in it come last."""
        rank = {t: i for i, t in enumerate(order)}
        tiers = sorted(self._by_tier, key=lambda t: rank.get(t, len(rank)))
        return {t: self._by_tier[t] for t in tiers}

    def check(self) -> None:
        """Raise `BudgetExceeded` if any limit is already reached; call before each request."""
        b = self.budget
        if b.requests is not None and self.usage.requests >= b.requests:
            raise BudgetExceeded("requests", limit=b.requests, spent=self.usage.requests)
        if b.tokens is not None and self.usage.total_tokens >= b.tokens:
            raise BudgetExceeded("tokens", limit=b.tokens, spent=self.usage.total_tokens)
        if b.usd is not None:
            spent = self.budget_dollars
            if spent >= b.usd:
                raise BudgetExceeded("dollars", limit=b.usd, spent=spent)

    @property
    def budget_dollars(self) -> Decimal:
        """Dollars counted against the budget: real cost, or the equivalent when it is $0."""
        real = self.cost
        return real if real > 0 else self.equivalent_cost

    def quote(self, spec: ModelSpec, usage: Usage) -> tuple[Decimal, Decimal]:
        """(cost, OpenAI-equivalent cost) of `usage` on `spec`, without recording it."""
        cost = spec.cost(usage)
        eq_spec = self._equivalents.get(spec.equivalent) if spec.equivalent else None
        return cost, (eq_spec.cost(usage) if eq_spec is not None else cost)

    def priced(self, spec: ModelSpec) -> bool:
        """Whether calls on `spec` have a known price: its own, or its equivalent's."""
        eq_spec = self._equivalents.get(spec.equivalent) if spec.equivalent else None
        return eq_spec.priced if eq_spec is not None else spec.priced

    @property
    def unpriced_requests(self) -> int:
        """Calls booked at $0 because no price is known for their model."""
        return sum(1 for c in self.charges if not c.priced)

    @property
    def flagship_priced(self) -> bool:
        """Whether the counterfactual (`flagship_cost`) is at a known price."""
        return self.priced(self._flagship)

    def require_prices(self, specs: Iterable[ModelSpec]) -> None:
        """Refuse a dollar budget over models with no known price (it could never run out).

        Call when a run starts, with every model it may use; no-op without `Budget.usd`.
        """
        if self.budget.usd is None:
            return
        unpriced = sorted({s.name for s in specs if not self.priced(s)})
        if unpriced:
            raise UserError(
                f"a dollar budget needs a price for every model, and none is known for "
                f"{', '.join(unpriced)}: name the OpenAI model each stands in for "
                "(TIERED_MODELS or --models 'nano=qwen2.5:0.5b@gpt-5.4-nano,...', "
                "ModelSpec(equivalent=...), or pricing=Pricing(...)), or drop the budget"
            )

    def record(self, spec: ModelSpec, usage: Usage) -> Charge:
        """Book one call's usage at `spec`'s prices and return the charge."""
        cost, equivalent = self.quote(spec, usage)
        charge = Charge(
            model=spec.name,
            tier=spec.tier,
            usage=usage,
            cost=cost,
            equivalent_cost=equivalent,
            flagship_cost=self._flagship.cost(usage),
            priced=self.priced(spec),
        )
        self.charges.append(charge)
        collector = _collector.get()
        if collector is not None:
            collector.append(charge)
        self.usage = self.usage + usage
        totals = self._by_tier.get(spec.tier)
        if totals is None:
            totals = self._by_tier[spec.tier] = TierTotals()
        totals.usage = totals.usage + usage
        totals.cost += cost
        totals.equivalent_cost += equivalent
        totals.unpriced_requests += 0 if charge.priced else 1
        return charge
