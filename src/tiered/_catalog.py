"""The tier ladder, model specs and exact dollar cost of a call.

Prices come from `genai-prices` (dated snapshots, long-context rates) unless a spec
sets its own; the catalog adds what that library lacks (tier, max output) and lets
users register local or self-hosted models with their own prices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from tiered._errors import UnknownModel, UserError
from tiered._usage import Usage

__all__ = (
    "FREE",
    "STANDARD_TIERS",
    "UNPRICED",
    "Catalog",
    "ModelSpec",
    "PriceBreak",
    "Pricing",
    "Tier",
    "default_catalog",
    "self_hosted_spec",
)

_MILLION = Decimal(1_000_000)
_BATCH_FACTOR = Decimal("0.5")
_REGIONAL_FACTOR = Decimal("1.1")


_TIER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class _TierMeta(type):
    """Iterating `Tier` itself gives the three standard rungs, cheapest first."""

    def __iter__(cls) -> Iterator[Tier]:
        return iter(STANDARD_TIERS)

    def __len__(cls) -> int:
        return len(STANDARD_TIERS)


class Tier(str, metaclass=_TierMeta):
    """The name of a rung of the model ladder: `Tier.NANO`, or your own `Tier("pro")`.

    A tier is only a name; the order of the rungs is the `Ladder`'s. Equal names are
    the same object, so `tier is Tier.NANO` holds for `Tier("nano")` too.
    """

    __slots__ = ()
    NANO: ClassVar[Tier]
    MINI: ClassVar[Tier]
    FLAGSHIP: ClassVar[Tier]
    _interned: ClassVar[dict[str, Tier]] = {}

    def __new__(cls, name: str) -> Tier:
        if isinstance(name, Tier):
            return name
        found = cls._interned.get(name)
        if found is not None:
            return found
        if not isinstance(name, str) or not _TIER_NAME.match(name):
            raise ValueError(
                f"tier name {name!r} must be lowercase letters, digits, '_' or '-' "
                f"(pattern {_TIER_NAME.pattern})"
            )
        tier = cls._interned[name] = super().__new__(cls, name)
        return tier

    @property
    def value(self) -> str:
        """The tier's name as plain text (as it appears in reports and JSON)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Tier({self.value!r})"

    def __reduce__(self) -> tuple[type[Tier], tuple[str]]:
        return (Tier, (self.value,))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validate from and serialise to the plain name."""
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str.__str__),
        )


Tier.NANO = Tier("nano")
Tier.MINI = Tier("mini")
Tier.FLAGSHIP = Tier("flagship")
STANDARD_TIERS: tuple[Tier, ...] = (Tier.NANO, Tier.MINI, Tier.FLAGSHIP)
"""The OpenAI ladder's rungs, cheapest first: the default order of a ladder."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceBreak:
    """Long-context rate: above `input_tokens`, all tokens of the call pay these prices."""

    input_tokens: int
    """Threshold; a call whose input exceeds it pays these rates on every token."""
    input: Decimal
    cached_input: Decimal
    output: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Pricing:
    """Dollars per 1M tokens, with optional long-context breaks."""

    input: Decimal
    """Per 1M uncached input tokens."""
    cached_input: Decimal
    """Per 1M input tokens read from the prompt cache."""
    output: Decimal
    """Per 1M output tokens (reasoning included)."""
    breaks: tuple[PriceBreak, ...] = ()
    """Long-context rates, ascending by threshold."""
    known: bool = True
    """False for `UNPRICED`: nobody knows what the calls cost, so they count as $0 and
    are flagged (the report says "no price known"; a dollar budget is refused)."""

    def cost(self, usage: Usage) -> Decimal:
        """Exact dollar cost of `usage` at these prices."""
        inp, cached, out = self.input, self.cached_input, self.output
        for b in self.breaks:
            if usage.input_tokens > b.input_tokens:
                inp, cached, out = b.input, b.cached_input, b.output
        uncached = usage.input_tokens - usage.cached_input_tokens
        total = uncached * inp + usage.cached_input_tokens * cached + usage.output_tokens * out
        return total / _MILLION


FREE = Pricing(input=Decimal(0), cached_input=Decimal(0), output=Decimal(0))
"""Known to cost nothing (a model on your own hardware); give it an `equivalent`."""
UNPRICED = Pricing(input=Decimal(0), cached_input=Decimal(0), output=Decimal(0), known=False)
"""No price known: a self-hosted model that names no OpenAI model it stands in for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """What the framework knows about one model: its tier, prices and limits."""

    name: str
    """The model name sent to the provider."""
    tier: Tier
    """The rung this model stands on."""
    context_window: int
    """Most tokens (input plus output) one call may hold."""
    max_output_tokens: int
    """Most tokens one call may generate."""
    pricing: Pricing | None = None
    """Explicit prices; None takes them from `genai-prices` by `price_ref`."""
    price_ref: str | None = None
    """Model id in `genai-prices` (defaults to `name`)."""
    provider: str = "openai"
    """Provider id in `genai-prices`."""
    equivalent: str | None = None
    """For a local or free model: the catalog model whose prices say what it would cost."""

    @property
    def priced(self) -> bool:
        """False when this model's own prices are `UNPRICED` (its `equivalent` may still be)."""
        return self.pricing is None or self.pricing.known

    def prices(self) -> Pricing:
        """The prices in force: explicit ones, else the `genai-prices` snapshot."""
        if self.pricing is not None:
            return self.pricing
        return _snapshot_pricing(self.price_ref or self.name, self.provider)

    def cost(self, usage: Usage, *, batch: bool = False, regional: bool = False) -> Decimal:
        """Exact dollars for `usage`; `batch` is the Batch API's 50% off, `regional` +10%."""
        dollars = self.prices().cost(usage)
        if batch:
            dollars *= _BATCH_FACTOR
        if regional:
            dollars *= _REGIONAL_FACTOR
        return dollars


@cache
def _snapshot_pricing(model_ref: str, provider: str) -> Pricing:
    """Read one model's prices from genai-prices once; later calls cost nothing."""
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    try:
        calc = calc_price(GUsage(input_tokens=0, output_tokens=0), model_ref, provider_id=provider)
    except LookupError as exc:
        raise UserError(
            f"genai-prices has no price for {provider}/{model_ref}: give the ModelSpec an "
            "explicit `pricing=Pricing(...)`"
        ) from exc
    mp = calc.model_price
    return _pricing_from(mp.input_mtok, mp.cache_read_mtok, mp.output_mtok)


def _split(price: Any) -> tuple[Decimal, dict[int, Decimal]]:
    """A genai-prices price (flat Decimal or TieredPrices) as (base, {threshold: price})."""
    if price is None:
        return Decimal(0), {}
    if isinstance(price, Decimal | int | float):
        return Decimal(price), {}
    return Decimal(price.base), {int(t.start): Decimal(t.price) for t in price.tiers}


def _pricing_from(inp: Any, cached: Any, out: Any) -> Pricing:
    base_in, tiers_in = _split(inp)
    base_cached, tiers_cached = _split(cached if cached is not None else inp)
    base_out, tiers_out = _split(out)
    starts = sorted(set(tiers_in) | set(tiers_cached) | set(tiers_out))
    breaks: list[PriceBreak] = []
    cur_in, cur_cached, cur_out = base_in, base_cached, base_out
    for s in starts:
        cur_in = tiers_in.get(s, cur_in)
        cur_cached = tiers_cached.get(s, cur_cached)
        cur_out = tiers_out.get(s, cur_out)
        breaks.append(
            PriceBreak(input_tokens=s, input=cur_in, cached_input=cur_cached, output=cur_out)
        )
    return Pricing(input=base_in, cached_input=base_cached, output=base_out, breaks=tuple(breaks))


@dataclass(slots=True)
class Catalog(Mapping[str, ModelSpec]):
    """Model specs by name, plus which model stands on each tier by default."""

    _specs: dict[str, ModelSpec] = field(default_factory=dict)
    _ladder: dict[Tier, str] = field(default_factory=dict)

    def register(self, spec: ModelSpec, *, default_for_tier: bool = False) -> ModelSpec:
        """Add or replace a spec; `default_for_tier` makes it its tier's default model."""
        self._specs[spec.name] = spec
        if default_for_tier or spec.tier not in self._ladder:
            self._ladder[spec.tier] = spec.name
        return spec

    def override_prices(self, name: str, pricing: Pricing) -> ModelSpec:
        """Replace one model's prices (a negotiated rate, a newer price list)."""
        return self.register(replace(self[name], pricing=pricing))

    def for_tier(self, tier: Tier) -> ModelSpec:
        """The default model on `tier`."""
        try:
            return self._specs[self._ladder[tier]]
        except KeyError:
            raise UserError(f"no model is registered for tier {tier.value!r}") from None

    def copy(self) -> Catalog:
        """An independent copy, so one run's changes never leak into another's."""
        return Catalog(dict(self._specs), dict(self._ladder))

    def __getitem__(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownModel(name, list(self._specs)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def get(self, name: str, default: Any = None) -> Any:
        """The spec named `name`, or `default`."""
        return self._specs.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


def default_catalog() -> Catalog:
    """A fresh catalog of the OpenAI ladder: gpt-5.4-nano, gpt-5.4-mini, gpt-5.4."""
    cat = Catalog()
    cat.register(
        ModelSpec(
            name="gpt-5.4-nano", tier=Tier.NANO, context_window=400_000, max_output_tokens=128_000
        )
    )
    cat.register(
        ModelSpec(
            name="gpt-5.4-mini", tier=Tier.MINI, context_window=400_000, max_output_tokens=128_000
        )
    )
    cat.register(
        ModelSpec(
            name="gpt-5.4", tier=Tier.FLAGSHIP, context_window=1_050_000, max_output_tokens=128_000
        )
    )
    return cat


_SELF_HOSTED_CONTEXT_WINDOW = 32_768
_SELF_HOSTED_MAX_OUTPUT = 8_192


def self_hosted_spec(
    name: str,
    tier: Tier,
    *,
    equivalent: str | None = None,
    catalog: Catalog | None = None,
    context_window: int = _SELF_HOSTED_CONTEXT_WINDOW,
    max_output_tokens: int = _SELF_HOSTED_MAX_OUTPUT,
) -> ModelSpec:
    """The spec of a model the catalog does not know (vLLM, Ollama, llama.cpp's server).

    With `equivalent` (a catalog model, e.g. "gpt-5.4-nano") it is free and metered at
    that model's prices; without, its price is unknown (`UNPRICED`), not $0.
    """
    if equivalent is None:
        return ModelSpec(
            name=name,
            tier=tier,
            context_window=context_window,
            max_output_tokens=max_output_tokens,
            pricing=UNPRICED,
        )
    cat = catalog if catalog is not None else default_catalog()
    if equivalent not in cat:
        raise UserError(
            f"model {name!r} stands in for {equivalent!r}, which the catalog does not know: "
            f"name one of {', '.join(cat)} (see `tiered models`)"
        )
    return ModelSpec(
        name=name,
        tier=tier,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        pricing=FREE,
        equivalent=equivalent,
    )
