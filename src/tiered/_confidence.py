"""Confidence gates: send a reply its model was unsure of one tier up.

A small model's wrong answers are mostly ones nothing can see: a valid call with a wrong
value, one call where two were asked. What can be seen is how sure the model was of its
least sure token (`AgentResult.confidence`). `tiered eval` keeps, per case, that
confidence beside whether the tier was right and whether the tier above was right on the
same case; `gate_options` turns those pairs into what each gate would do (how many
replies it sends up, how many are right after the cascade), and the `CalibratedRouter`
weighs a gated start against the plain ones on cost per success.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ("GateOption", "Paired", "gate_options")

Paired = tuple[float | None, bool, bool]
"""One case: (this tier's confidence, None for a visible failure; right here; right on the
tier above)."""


@dataclass(frozen=True, slots=True)
class GateOption:
    """What escalating every reply under `gate` did on the calibration cases."""

    gate: float
    """Replies less sure than this go one tier up."""
    escalated: float
    """Share of cases sent up: the gated replies and the visible failures."""
    success: float
    """Share of cases right after the cascade."""
    n: int
    """Cases it was measured on."""

    def describe(self) -> str:
        """E.g. "gate 0.52: 31% sent up"."""
        return f"confidence gate {self.gate:.2f}: {100 * self.escalated:.0f}% sent up"


def gate_options(paired: Sequence[Paired]) -> list[GateOption]:
    """Every useful gate over `paired`, lowest first: one between each two neighbouring
    confidences seen, so a gate never sits on a measured value. A gate that sends nothing
    up beyond the visible failures is the plain start, and is left out."""
    known = sorted({c for c, _, _ in paired if c is not None})
    return [_option(paired, (low + high) / 2) for low, high in itertools.pairwise(known)]


def _option(paired: Iterable[Paired], gate: float) -> GateOption:
    n = up = right = 0
    for confidence, here, above in paired:
        n += 1
        sent = confidence is None or confidence < gate
        up += sent
        right += above if sent else here
    return GateOption(gate=gate, escalated=up / n, success=right / n, n=n)
