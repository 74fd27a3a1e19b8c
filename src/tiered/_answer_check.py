"""A check of the composed final answer: every number it states must come from the work.

The planner composes the final answer from the executors' typed outputs. A model can
still write a number none of them produced ("200 cents" when the refund tool said
3499). `check_numbers` finds every number in the answer and looks for it among the
subtask outputs (and any tool results passed in); the first one it cannot find is
reported with the numbers that *were* available, subtask by subtask.

The matching rule, in full:

* Numbers are read with thousands separators removed: `3,499` and `3499` are the
  same number; `34.99`, `-2` and `1.5e3` are numbers too.
* A number glued to letters is part of a name, not a claim: `A-1001`, `gpt-5`,
  `x86` and `2nd` are skipped (in the answer; in the outputs their digits still count,
  so an order id `A-1001` makes `1001` available).
* Money is compared in both units: an answer number written as money (`$34.99`,
  `34.99 USD`, `3,499 cents`, `34.99 dollars`) also matches a source number 100 times
  itself (cents written as dollars) or a hundredth of itself (dollars as cents).
  A percentage (`50%`) also matches its fraction (`0.5`).
* An answer number with decimals matches a source number rounded to as many places
  (`$0.12` matches `0.1234`); a whole number must match exactly.
* Whole numbers below `ignore_below` (10 unless you say otherwise) are not checked:
  they are counts and ordinals ("2 tickets", "ticket 1") more often than claims.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

__all__ = ("NumberClaim", "check_numbers", "numbers_from_outputs", "numbers_in", "states_amount")

_NUMBER = re.compile(
    r"(?P<cur>[$€£]\s?)?"
    r"(?<![\w.\-])(?P<sign>-)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"(?![\w.]*[A-Za-z_])(?P<pct>\s?%)?"
    r"(?P<unit>\s?(?:cents?|dollars?|usd|eur|gbp)\b)?",
    re.IGNORECASE,
)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class NumberClaim:
    """One number stated in a text: its value, how it was written and whether it is money."""

    value: Decimal
    """The number, thousands separators removed."""
    text: str
    """The number as written, with its currency sign or unit."""
    money: bool = False
    """Written with a currency sign or unit (`$`, `cents`, `USD`...)."""
    percent: bool = False
    """Written with `%`."""
    where: str = ""
    """A short quote of the text around it, or the field path for structured answers."""

    @property
    def places(self) -> int:
        """Digits after the decimal point as written (0 for a whole number)."""
        exponent = self.value.as_tuple().exponent
        return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def numbers_in(text: str) -> list[NumberClaim]:
    """Every number in `text` that is a claim (not part of a name like `A-1001`)."""
    found: list[NumberClaim] = []
    for m in _NUMBER.finditer(text):
        raw = m.group("num").replace(",", "")
        try:
            value = Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern only admits numbers
            continue
        if m.group("sign") is not None:
            value = -value
        lo, hi = max(0, m.start() - 30), min(len(text), m.end() + 30)
        quote = " ".join(text[lo:hi].split())
        found.append(
            NumberClaim(
                value=value,
                text=m.group(0).strip(),
                money=bool(m.group("cur") or m.group("unit")),
                percent=m.group("pct") is not None,
                where=quote,
            )
        )
    return found


def _walk(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    """(path, leaf) for every leaf of a nested output; pydantic models become dicts."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python")
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def _leaf_numbers(leaf: Any) -> list[Decimal]:
    if isinstance(leaf, bool) or leaf is None:
        return []
    if isinstance(leaf, int | Decimal):
        return [Decimal(leaf)]
    if isinstance(leaf, float):
        return [Decimal(repr(leaf))] if leaf == leaf and abs(leaf) != float("inf") else []
    text = str(leaf)
    out = [c.value for c in numbers_in(text)]
    # digits inside names (`A-1001`) are available from an output, though never claims
    out += [Decimal(d) for d in re.findall(r"\d+(?:\.\d+)?", text)]
    return out


def numbers_from_outputs(
    outputs: Mapping[str, Any], *, tool_results: Iterable[Any] = ()
) -> dict[Decimal, list[str]]:
    """Every number in the outputs (and tool results), each with where it was found.

    Keys of `outputs` are subtask ids; the places read like `r1.total_cents`, and
    `tool[0].sum` for the tool results.
    """
    found: dict[Decimal, list[str]] = {}
    sources: list[tuple[str, Any]] = list(outputs.items())
    sources += [(f"tool[{i}]", r) for i, r in enumerate(tool_results)]
    for name, output in sources:
        for path, leaf in _walk(output, name):
            for n in _leaf_numbers(leaf):
                places = found.setdefault(n.normalize(), [])
                if path not in places:
                    places.append(path)
    return found


def _matches(claim: NumberClaim, available: Iterable[Decimal]) -> bool:
    """Whether a source number, in the units the claim allows, is the claim as written."""
    quantum = Decimal(1).scaleb(-claim.places) if claim.places else None
    for source in available:
        seen = [source]
        if claim.money:
            seen += [source / _HUNDRED, source * _HUNDRED]  # cents as dollars, dollars as cents
        if claim.percent:
            seen.append(source * _HUNDRED)  # 0.5 written as 50%
        for value in seen:
            if value == claim.value:
                return True
            if quantum is not None and value.quantize(quantum) == claim.value:
                return True  # rounded to the places the answer wrote
    return False


def _answer_claims(answer: Any) -> list[NumberClaim]:
    if isinstance(answer, str):
        return numbers_in(answer)
    claims: list[NumberClaim] = []
    for path, leaf in _walk(answer, "answer"):
        if isinstance(leaf, str):
            claims += [
                NumberClaim(c.value, c.text, c.money, c.percent, f"{path}: {c.where}")
                for c in numbers_in(leaf)
            ]
        else:
            for n in _leaf_numbers(leaf):
                claims.append(NumberClaim(n, str(leaf), where=path))
    return claims


def _describe(available: Mapping[Decimal, list[str]], outputs: Mapping[str, Any]) -> str:
    by_source: dict[str, list[str]] = {}
    for value, places in available.items():
        for place in places:
            source = re.split(r"[.\[]", place, maxsplit=1)[0]
            by_source.setdefault(source, []).append(f"{place}={value:f}")
    lines = []
    for source in [*outputs, *(s for s in by_source if s not in outputs)]:
        kind = type(outputs[source]).__name__ if source in outputs else "tool result"
        shown = by_source.get(source, [])
        more = f" (+{len(shown) - 8} more)" if len(shown) > 8 else ""
        listed = ", ".join(shown[:8]) or "no numbers"
        lines.append(f"{source} ({kind}): {listed}{more}")
    return "; ".join(lines) if lines else "no subtask outputs"


def check_numbers(
    answer: Any,
    outputs: Mapping[str, Any],
    *,
    tool_results: Iterable[Any] = (),
    ignore_below: int = 10,
) -> str | None:
    """None when every number in `answer` comes from `outputs` or `tool_results`, else why not.

    The message quotes the first unsupported claim and lists the numbers each subtask
    output held, so whoever reads the failed run sees which claim was wrong and what
    the answer could have said. The matching rule is in this module's docstring.
    """
    available = numbers_from_outputs(outputs, tool_results=tool_results)
    unsupported = [
        c
        for c in _answer_claims(answer)
        if not (c.places == 0 and not c.money and not c.percent and abs(c.value) < ignore_below)
        and not _matches(c, available)
    ]
    if not unsupported:
        return None
    first = unsupported[0]
    others = ""
    if len(unsupported) > 1:
        others = " (also unsupported: " + ", ".join(c.text for c in unsupported[1:6]) + ")"
    return (
        f"the final answer says {first.text!r} ({first.where!r}) but no subtask output or "
        f"tool result holds that number{others}; available: {_describe(available, outputs)}"
    )


def states_amount(text: str, cents: int) -> bool:
    """Whether `text` states `cents`, as cents (`3499`, `3,499 cents`) or as money in
    dollars (`$34.99`, `34.99 USD`): for a check that a summary gives the total it is
    about, where `check_numbers` only asks that every number it gives is real."""
    want = (Decimal(cents),)
    return any(_matches(claim, want) for claim in numbers_in(text))
