"""The run ledger: every model call's usage and dollars, checked against a budget.

Money lives in one place: each call is booked once as a `Charge`, and every total
(an attempt, a subtask, a tier, the run) is a sum of those charges. `collect_charges()`
gathers the charges booked in the current task and the tasks it starts, so the
orchestrator can hand an attempt exactly its own calls.
A call on a model with no known price (a self-hosted model that names no OpenAI model
it stands in for) is booked at $0 but flagged (`Charge.priced`, `unpriced_requests`),
so a report can say "no price known"; a dollar budget over such a model is refused
up front (`Ledger.require_prices`) instead of silently never running out.

Before a call the caller reserves its worst case (`Ledger.reserve`); the reservation is
settled to the real charge when the answer comes, released if the call never happened,
or booked as "possibly billed" at the worst case when the call was abandoned after the
provider may have billed it. Check and hold happen with no await between them, so no
number of concurrent callers on one event loop can spend past the `Budget`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from tiered._build import builder
from tiered._catalog import STANDARD_TIERS, ModelSpec, Tier, default_catalog
from tiered._charges import (
    Budget,
    Charge,
    ChargeBox,
    TierTotals,
    Totals,
    collect_charges,
    collector,
    task_box,
)
from tiered._errors import BudgetExceeded, UserError
from tiered._usage import NO_USAGE, Usage

__all__ = (
    "Budget",
    "Charge",
    "ChargeBox",
    "Ledger",
    "Reservation",
    "TierTotals",
    "collect_charges",
    "task_box",
)


_NO_BUDGET = Budget()
_ZERO = Decimal(0)
_build_charge = builder(Charge)
_DEFAULTS: list[tuple[ModelSpec, dict[str, ModelSpec]]] = []


def _defaults() -> tuple[ModelSpec, dict[str, ModelSpec]]:
    """The default catalog's flagship and specs by name, built once (specs are frozen):
    a plain `Agent.run` makes a ledger per call."""
    if not _DEFAULTS:
        cat = default_catalog()
        _DEFAULTS.append((cat.for_tier(Tier.FLAGSHIP), dict(cat)))
    return _DEFAULTS[0]


class Ledger:
    """Records charges and enforces a `Budget`. One per run; share it across agents."""

    __slots__ = (
        "_billed",
        "_by_tier",
        "_equivalents",
        "_flagship",
        "_held",
        "_spent",
        "budget",
        "charges",
        "listener",
        "usage",
    )

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        flagship: ModelSpec | None = None,
        equivalents: dict[str, ModelSpec] | None = None,
    ) -> None:
        default_flagship, default_specs = _defaults()
        self.budget = budget or _NO_BUDGET
        self._flagship = flagship or default_flagship
        self._equivalents = equivalents if equivalents is not None else dict(default_specs)
        if flagship is not None:  # the planner's model: a dollar budget needs its price
            self.require_prices((flagship,))
        self.charges: list[Charge] = []
        self.usage = NO_USAGE
        """Usage the providers reported (possibly billed estimates are kept apart)."""
        self._by_tier: dict[Tier, TierTotals] = {}
        self.listener: Callable[[Charge], None] | None = None
        """Told of every charge as it is booked (the run journal writes it to disk)."""
        self._billed = Totals()  # possibly billed worst cases
        self._spent = Totals()  # everything the budget counts: reported + possibly billed
        self._held = Totals()  # open reservations

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
        b, spent = self.budget, self._spent
        if b.requests is not None and spent.requests >= b.requests:
            raise BudgetExceeded("requests", limit=b.requests, spent=spent.requests)
        if b.tokens is not None and spent.tokens >= b.tokens:
            raise BudgetExceeded("tokens", limit=b.tokens, spent=spent.tokens)
        if b.usd is not None and spent.dollars >= b.usd:
            raise BudgetExceeded("dollars", limit=b.usd, spent=spent.dollars)

    @property
    def budget_dollars(self) -> Decimal:
        """Dollars counted against the budget: each call's real cost, or its OpenAI
        equivalent when it cost $0 (a local model), possibly billed calls included."""
        return self._spent.dollars

    @property
    def possibly_billed(self) -> Usage:
        """Worst-case usage of calls abandoned after the provider may have billed them."""
        return Usage(
            input_tokens=self._billed.input_tokens,
            output_tokens=self._billed.tokens - self._billed.input_tokens,
            requests=self._billed.requests,
        )

    @property
    def possibly_billed_cost(self) -> Decimal:
        """Budget dollars of the possibly billed calls (counted against the budget)."""
        return self._billed.dollars

    @property
    def held_dollars(self) -> Decimal:
        """Budget dollars reserved by calls in flight."""
        return self._held.dollars

    def reserve(
        self, spec: ModelSpec, estimated_input_tokens: int, max_output_tokens: int
    ) -> Reservation:
        """Hold one call's worst case or raise `BudgetExceeded`; the call may start only
        once this returns. Settle, release or abandon the reservation when it ends."""
        inp, out = max(estimated_input_tokens, 0), max(max_output_tokens, 0)
        return Reservation(self, spec, inp, out, self._hold(spec, inp, out))

    def _hold(self, spec: ModelSpec, inp: int, out: int) -> Decimal:
        """Check and hold a worst case of `inp` + `out` tokens (both >= 0); its dollars."""
        b, spent, held = self.budget, self._spent, self._held
        # Dollars are priced only when a dollar limit needs them (the hot path without one).
        dollars = (
            self._budget_cost(spec, Usage(input_tokens=inp, output_tokens=out, requests=1))
            if b.usd is not None
            else _ZERO
        )
        if b.requests is not None and spent.requests + held.requests + 1 > b.requests:
            raise BudgetExceeded(
                "requests", limit=b.requests, spent=spent.requests + held.requests, needed=1
            )
        if b.tokens is not None and spent.tokens + held.tokens + inp + out > b.tokens:
            raise BudgetExceeded(
                "tokens", limit=b.tokens, spent=spent.tokens + held.tokens, needed=inp + out
            )
        if b.usd is not None and spent.dollars + held.dollars + dollars > b.usd:
            raise BudgetExceeded(
                "dollars", limit=b.usd, spent=spent.dollars + held.dollars, needed=dollars
            )
        held.add_raw(1, inp + out, inp, dollars)
        return dollars

    def _budget_cost(self, spec: ModelSpec, usage: Usage) -> Decimal:
        cost = spec.cost(usage)
        return cost if cost > 0 else self.quote(spec, usage)[1]

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

    def record(self, spec: ModelSpec, usage: Usage, *, possibly_billed: bool = False) -> Charge:
        """Book one call's usage at `spec`'s prices and return the charge.

        A `possibly_billed` charge (a worst-case estimate) counts against the budget and
        in `possibly_billed`, but not in `usage`, `cost` or the per-tier totals."""
        cost = spec.cost(usage)
        # `quote` and `priced`, written out: this runs once per model call
        eq_spec = self._equivalents.get(spec.equivalent) if spec.equivalent else None
        charge = _build_charge(
            model=spec.name,
            tier=spec.tier,
            usage=usage,
            cost=cost,
            equivalent_cost=cost if eq_spec is None else eq_spec.cost(usage),
            flagship_cost=cost if spec is self._flagship else self._flagship.cost(usage),
            priced=spec.priced if eq_spec is None else eq_spec.priced,
            possibly_billed=possibly_billed,
        )
        self._book(charge)
        charges = collector.get()
        if charges is not None:
            charges.append(charge)
        if self.listener is not None:
            self.listener(charge)
        return charge

    def restore(self, charges: Iterable[Charge]) -> None:
        """Book charges of an earlier session of this run (a resume): they count again."""
        for charge in charges:
            self._book(charge)

    def _book(self, charge: Charge) -> None:
        self.charges.append(charge)
        usage = charge.usage
        dollars = charge.cost if charge.cost > 0 else charge.equivalent_cost
        self._spent.add(usage, dollars)
        if charge.possibly_billed:
            self._billed.add(usage, dollars)
            return
        self.usage = self.usage + usage
        totals = self._by_tier.get(charge.tier)
        if totals is None:
            totals = self._by_tier[charge.tier] = TierTotals()
        totals.usage = totals.usage + usage
        totals.cost += charge.cost
        totals.equivalent_cost += charge.equivalent_cost
        if not charge.priced:
            totals.unpriced_requests += 1


class Reservation:
    """One call's worst case held against the budget until it is settled or released
    (`Ledger.reserve` makes one)."""

    __slots__ = ("_input", "_ledger", "_output", "dollars", "open", "spec")

    def __init__(
        self, ledger: Ledger, spec: ModelSpec, input_tokens: int, output: int, dollars: Decimal
    ) -> None:
        self._ledger = ledger
        self.spec = spec
        self._input = input_tokens
        self._output = output
        self.dollars = dollars
        """Budget dollars held."""
        self.open = True

    @property
    def worst(self) -> Usage:
        """The usage held: estimated input plus the maximum output, one request."""
        return Usage(input_tokens=self._input, output_tokens=self._output, requests=1)

    def _close(self) -> None:
        if not self.open:
            raise RuntimeError("this reservation was already settled or released")
        self.open = False
        self._ledger._held.add_raw(-1, -(self._input + self._output), -self._input, -self.dollars)

    def settle(self, usage: Usage) -> Charge:
        """Book the call's real usage and release the hold."""
        self._close()
        return self._ledger.record(self.spec, usage)

    def release(self) -> None:
        """Release the hold of a call that never reached the provider."""
        self._close()

    def abandon(self) -> Charge:
        """Book the worst case as "possibly billed": the call was sent, no usage came back."""
        self._close()
        return self._ledger.record(self.spec, self.worst, possibly_billed=True)
