"""Metering one model call across the attempts a retrying wrapper makes.

The agent opens `metered_call` around `model.request(...)`: it reserves the first attempt's
worst case. A wrapper under it (`RetryingModel`, `PacedModel`) reports each failed attempt
(`attempt_failed`: its usage is booked, or the worst case as possibly billed, or the hold
is released) and reserves the next (`attempt_again`) through a context variable, so the
budget holds across retries without the models knowing the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from tiered._catalog import ModelSpec
from tiered._errors import ModelError
from tiered._ledger import Charge, Ledger, Reservation
from tiered._logging import get_logger
from tiered._usage import Usage

__all__ = ("attempt_again", "attempt_failed", "attempt_not_sent", "metered_call")


class _Attempts(Reservation):
    """An agent's model call: the reservation of the attempt under way (itself: one object
    per call, not two; `open` while one is held), and the charges of attempts a retrying
    wrapper already finished (through `_attempts`)."""

    __slots__ = ("charges", "sent")

    def __init__(self, ledger: Ledger, spec: ModelSpec, tokens: int, max_output: int) -> None:
        inp, out = max(tokens, 0), max(max_output, 0)
        super().__init__(ledger, spec, inp, out, ledger._hold(spec, inp, out))
        self.charges: Sequence[Charge] = ()
        """The attempts' charges, oldest first (a list from the first one on: none is made
        for a call still in flight)."""
        self.sent = True  # unless a pacer says it is still waiting

    def failed(self, exc: BaseException) -> None:
        """Book the attempt that raised `exc`: its usage, possibly billed, or nothing."""
        if not self.open:
            return
        usage = exc.usage if isinstance(exc, ModelError) else None
        if usage is not None and (usage.total_tokens or usage.requests):
            self._add(self.settle(usage))
        elif isinstance(exc, ModelError) and exc.possibly_billed:
            self._add(self._abandon(type(exc).__name__))
        else:
            self.release()

    def _add(self, charge: Charge) -> None:
        self.charges = [*self.charges, charge]

    def _abandon(self, why: str) -> Charge:
        charge = self.abandon()
        get_logger().warning(
            "model.possibly_billed",
            model=self.spec.name,
            reason=why,
            input_tokens=charge.usage.input_tokens,
            output_tokens=charge.usage.output_tokens,
            cost_usd=str(charge.cost),
        )
        return charge

    def again(self) -> None:
        """Reserve the next attempt (raises `BudgetExceeded` when it no longer fits)."""
        if not self.open:
            self.sent = True
            self.dollars = self._ledger._hold(self.spec, self._input, self._output)
            self.open = True

    def succeeded(self, usage: Usage) -> Charge:
        """Settle the last attempt to the usage its response reported."""
        # no open reservation means a wrapper already booked it: book directly
        charge = self.settle(usage) if self.open else self._ledger.record(self.spec, usage)
        self._add(charge)
        return charge

    def close(self) -> None:
        """End of the call: an attempt still open was abandoned (cancelled)."""
        if self.open:
            if self.sent:
                self._add(self._abandon("cancelled"))
            else:
                self.release()


_current: ContextVar[_Attempts | None] = ContextVar("tiered_attempts", default=None)


class metered_call(_Attempts):  # lower case: used like a function, `with metered_call(...) as a:`
    """Reserve a model call (raises `BudgetExceeded`) and let retrying wrappers under it
    book and re-reserve each attempt; whatever is still open at exit is abandoned.

    It is its own `_Attempts` (one object per model call, not two)."""

    __slots__ = ("_token",)

    def __enter__(self) -> _Attempts:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
        self.close()


def attempt_failed(exc: BaseException) -> None:
    """For a retrying wrapper: the attempt under way failed with `exc`; book it."""
    attempts = _current.get()
    if attempts is not None:
        attempts.failed(exc)


def attempt_again() -> None:
    """For a retrying wrapper: reserve the next attempt; raises `BudgetExceeded`."""
    attempts = _current.get()
    if attempts is not None:
        attempts.again()


@contextmanager
def attempt_not_sent() -> Iterator[None]:
    """For a pacer: the attempt waits here unsent, so a cancel releases its hold."""
    attempts = _current.get()
    if attempts is None:
        yield
        return
    attempts.sent = False
    yield
    attempts.sent = True
