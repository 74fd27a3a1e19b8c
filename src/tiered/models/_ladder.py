"""The tier ladder: the rungs a run may use, cheapest first, and the model on each.

Order is data, not an enum: two rungs, the standard three, or four with a "pro" model
above the flagship are all ladders. Routing and escalation ask the ladder what is above
or at the top instead of naming `Tier.FLAGSHIP`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from tiered._catalog import STANDARD_TIERS, ModelSpec, Tier
from tiered._errors import UserError
from tiered.models._base import Model

__all__ = ("Ladder",)


class Ladder(Mapping[Tier, Model]):
    """Ordered rungs (tier, model), cheapest first, plus a line saying where they come from.

    Built from pairs (the order given) or a mapping: the standard tiers in their usual
    order nano < mini < flagship when every key is one of them, else insertion order.
    """

    __slots__ = ("_index", "_models", "source", "tiers")

    def __init__(
        self,
        rungs: Mapping[Tier, Model] | Iterable[tuple[Tier | str, Model]],
        source: str = "",
    ) -> None:
        pairs = list(rungs.items()) if isinstance(rungs, Mapping) else list(rungs)
        tiers = [Tier(t) for t, _ in pairs]
        if len(set(tiers)) != len(tiers):
            raise UserError(f"a ladder lists a tier twice: {[t.value for t in tiers]}")
        if not tiers:
            raise UserError("a ladder needs at least one rung (a tier and its model)")
        if isinstance(rungs, Mapping) and all(t in STANDARD_TIERS for t in tiers):
            tiers.sort(key=STANDARD_TIERS.index)
        models = {Tier(t): m for t, m in pairs}
        self._models: dict[Tier, Model] = {t: models[t] for t in tiers}
        self.tiers: tuple[Tier, ...] = tuple(tiers)
        """The rungs, cheapest first."""
        self._index = {t: i for i, t in enumerate(self.tiers)}
        self.source = source
        """Plain words for the start-up banner, e.g. 'OpenAI (OPENAI_API_KEY is set)'."""

    @classmethod
    def of(cls, models: Mapping[Tier, Model]) -> Ladder:
        """`models` as a ladder (itself if it already is one)."""
        return models if isinstance(models, Ladder) else cls(models)

    def __repr__(self) -> str:
        rungs = ", ".join(f"{t.value}={m.spec.name}" for t, m in self._models.items())
        return f"Ladder({rungs})"

    def __getitem__(self, tier: Tier) -> Model:
        return self._models[tier]

    def __iter__(self) -> Iterator[Tier]:
        return iter(self.tiers)

    def __len__(self) -> int:
        return len(self.tiers)

    @property
    def bottom(self) -> Tier:
        """The cheapest rung."""
        return self.tiers[0]

    @property
    def top(self) -> Tier:
        """The highest rung (the flagship on the standard ladder)."""
        return self.tiers[-1]

    def index(self, tier: Tier) -> int:
        """0 for the cheapest rung; `UserError` for a tier this ladder lacks."""
        try:
            return self._index[tier]
        except KeyError:
            raise UserError(
                f"tier {tier.value!r} is not on this ladder "
                f"({', '.join(t.value for t in self.tiers)}): add a model for it or route "
                "to one of these"
            ) from None

    def above(self, tier: Tier) -> Tier | None:
        """The next rung up, or None at the top."""
        i = self.index(tier) + 1
        return self.tiers[i] if i < len(self.tiers) else None

    def below(self, tier: Tier) -> Tier | None:
        """The next rung down, or None at the bottom."""
        i = self.index(tier) - 1
        return self.tiers[i] if i >= 0 else None

    @property
    def specs(self) -> dict[Tier, ModelSpec]:
        """The model spec on each rung."""
        return {t: m.spec for t, m in self._models.items()}

    async def aclose(self) -> None:
        """Close each distinct model once (their HTTP clients reopen on the next request)."""
        for model in {id(m): m for m in self._models.values()}.values():
            await model.aclose()
