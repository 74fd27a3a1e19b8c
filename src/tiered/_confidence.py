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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

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
    expected: float = 0.0
    """`success` as the router counts on it. The share right among the replies kept and
    among those sent up are each shrunk, by two cases' weight, toward what a gate that
    sorts nothing would give (this tier's rate, the tier above's): with a few dozen
    cases, the best of many gates is partly luck, and a gate that looks perfect on two
    replies sent up is not taken at its word."""

    def describe(self) -> str:
        """E.g. "gate 0.52: 31% sent up"."""
        return f"confidence gate {self.gate:.2f}: {100 * self.escalated:.0f}% sent up"


def gate_options(paired: Sequence[Paired]) -> list[GateOption]:
    """Every useful gate over `paired`, lowest first: one between each two neighbouring
    confidences seen, so a gate never sits on a measured value. A gate that sends nothing
    up beyond the visible failures is the plain start, and is left out."""
    known = sorted({c for c, _, _ in paired if c is not None})
    return [_option(paired, (low + high) / 2) for low, high in itertools.pairwise(known)]


_PRIOR_CASES: Final = 2.0
"""Weight of the no-signal prior in `GateOption.expected`, in cases."""


def _option(paired: Sequence[Paired], gate: float) -> GateOption:
    n = len(paired)
    here_rate = sum(here for _, here, _ in paired) / n
    above_rate = sum(above for _, _, above in paired) / n
    up = kept_right = up_right = 0
    for confidence, here, above in paired:
        sent = confidence is None or confidence < gate
        up += sent
        up_right += sent and above
        kept_right += not sent and here
    kept, k = n - up, _PRIOR_CASES
    expected = (
        kept * (kept_right + k * here_rate) / (kept + k)
        + up * (up_right + k * above_rate) / (up + k)
    ) / n
    return GateOption(
        gate=gate, escalated=up / n, success=(kept_right + up_right) / n, n=n, expected=expected
    )
