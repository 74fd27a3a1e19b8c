"""What the ledger books: a `Budget`, each call's `Charge`, totals per tier, and
`collect_charges()`, which gathers the charges booked in the current task and the tasks
it starts, so the orchestrator can hand an attempt exactly its own calls."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from tiered._catalog import Tier
from tiered._errors import UserError
from tiered._usage import NO_USAGE, Usage

__all__ = (
    "Budget",
    "Charge",
    "ChargeBox",
    "TierTotals",
    "Totals",
    "collect_charges",
    "collector",
    "task_box",
)

collector: ContextVar[list[Charge] | ChargeBox | None] = ContextVar("tiered_charges", default=None)
"""Where a booked charge goes in this context: the list of the `collect_charges()` block
under way, or a task's `ChargeBox` (None: nowhere but the ledger)."""


class ChargeBox:
    """One task's reusable collector: set in its context once (`task_box()`), it gathers
    the charges booked between `start()` and `stop()` (child tasks included), with no
    context-variable change and no list per block until something is booked. Between
    blocks it keeps nothing. A `collect_charges()` block inside takes its own charges."""

    __slots__ = ("_charges", "_open")

    def __init__(self) -> None:
        self._charges: list[Charge] | None = None
        self._open = False

    def append(self, charge: Charge) -> None:
        """Keep `charge` if a block is open."""
        if self._open:
            if self._charges is None:
                self._charges = [charge]
            else:
                self._charges.append(charge)

    def start(self) -> None:
        """Open a block."""
        self._open, self._charges = True, None

    def stop(self) -> list[Charge]:
        """Close the block: the charges booked in it."""
        charges, self._charges, self._open = self._charges, None, False
        return [] if charges is None else charges


def task_box() -> ChargeBox:
    """A new `ChargeBox`, set in the current task's context: for a task that runs one
    block at a time (a scheduler worker). Tasks it starts inherit it; one that opens
    blocks of its own sets its own box first."""
    box = ChargeBox()
    collector.set(box)
    return box


class collect_charges:  # lower case: used like a function, `with collect_charges() as c:`
    """Gather every charge booked inside the block (child tasks included) into a list.

    Blocks nest: an inner block takes the charges booked inside it, the outer one keeps
    the rest. (A slotted class rather than a generator context manager: one per attempt,
    so its size counts in every in-flight subtask.)
    """

    __slots__ = ("_charges", "_token")

    def __init__(self) -> None:
        self._charges: list[Charge] = []

    def __enter__(self) -> list[Charge]:
        self._token = collector.set(self._charges)
        return self._charges

    def __exit__(self, *exc_info: object) -> None:
        collector.reset(self._token)


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Limits for one run; None means unlimited. Checked before every model call."""

    usd: Decimal | None = None
    """Dollars, at the catalog's prices (a local model's OpenAI-equivalent when priced $0)."""
    tokens: int | None = None
    """Input plus output tokens."""
    requests: int | None = None
    """Model requests."""
    on_exhausted: Literal["stop", "downgrade"] = "stop"
    """When a call's worst case no longer fits: "stop" new work (unstarted subtasks are
    skipped), or "downgrade" the subtask a rung at a time to a tier whose call still fits."""

    def __post_init__(self) -> None:
        if self.usd is not None and not isinstance(self.usd, Decimal):
            object.__setattr__(self, "usd", Decimal(str(self.usd)))
        if self.on_exhausted not in ("stop", "downgrade"):
            raise UserError(
                f"Budget(on_exhausted={self.on_exhausted!r}): use 'stop' or 'downgrade'"
            )


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
    possibly_billed: bool = False
    """No usage came back but the provider may have billed the call (a timeout or cancel
    after the request was sent): `usage` and the dollars are the reserved worst case."""


@dataclass(slots=True, kw_only=True)
class TierTotals:
    """Usage and dollars summed over one tier."""

    usage: Usage = NO_USAGE
    cost: Decimal = Decimal(0)
    equivalent_cost: Decimal = Decimal(0)
    unpriced_requests: int = 0
    """Calls on this tier whose price is unknown (booked at $0)."""


@dataclass(slots=True)
class Totals:
    """Requests, tokens and budget dollars, summed (the ledger's running counts)."""

    requests: int = 0
    tokens: int = 0
    input_tokens: int = 0
    dollars: Decimal = Decimal(0)

    def add(self, usage: Usage, dollars: Decimal) -> None:
        """Count one booked call."""
        self.add_raw(usage.requests, usage.total_tokens, usage.input_tokens, dollars)

    def add_raw(self, requests: int, tokens: int, input_tokens: int, dollars: Decimal) -> None:
        """Count (or, negative, uncount) raw amounts: a reservation's hold."""
        self.requests += requests
        self.tokens += tokens
        self.input_tokens += input_tokens
        if dollars:
            self.dollars += dollars
