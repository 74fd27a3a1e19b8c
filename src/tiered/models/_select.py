"""Pick the tier ladder from the environment: OpenAI, any compatible server, or local.

`OPENAI_API_KEY` -> the OpenAI tiers; `TIERED_BASE_URL` (or `base_url=`) -> any
OpenAI-compatible server with a tier-to-model map (`TIERED_MODELS`,
"nano=NAME,mini=NAME,flagship=NAME"); otherwise the embedded local ladder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tiered._catalog import Tier, default_catalog
from tiered._errors import UserError
from tiered.models._base import Model
from tiered.models._retry import CircuitBreaker, RetryingModel

__all__ = ("Ladder", "models_from_env", "parse_model_map")


@dataclass(frozen=True, slots=True)
class Ladder(Mapping[Tier, Model]):
    """The model on each tier, and a line saying where they come from."""

    models: Mapping[Tier, Model]
    source: str
    """Plain words for the start-up banner, e.g. 'OpenAI (OPENAI_API_KEY is set)'."""

    def __getitem__(self, tier: Tier) -> Model:
        return self.models[tier]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    async def aclose(self) -> None:
        """Close the models' HTTP clients (they reopen on the next request)."""
        for model in {id(m): m for m in self.models.values()}.values():
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()


def parse_model_map(text: str) -> dict[Tier, str]:
    """Parse "nano=a,mini=b,flagship=c" (a single name means every tier)."""
    text = text.strip()
    if text and "=" not in text:
        return dict.fromkeys(Tier, text)
    out: dict[Tier, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, name = part.partition("=")
        try:
            out[Tier(key.strip().lower())] = name.strip()
        except ValueError:
            raise UserError(
                f"bad tier {key!r} in model map {text!r}: use nano=NAME,mini=NAME,flagship=NAME"
            ) from None
    return out


_cache: dict[tuple[str | None, ...], Ladder] = {}


def models_from_env(
    env: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
    model_map: Mapping[Tier, str] | None = None,
    threads: int | None = None,
) -> Ladder:
    """The ladder the environment asks for; built once per distinct setting per process."""
    env = os.environ if env is None else env
    base_url = base_url or env.get("TIERED_BASE_URL") or None
    api_key = env.get("OPENAI_API_KEY") or None
    map_text = env.get("TIERED_MODELS", "")
    key = (base_url, api_key, map_text, repr(sorted((model_map or {}).items())), str(threads))
    ladder = _cache.get(key)
    if ladder is None:
        ladder = _cache[key] = _build(base_url, api_key, map_text, model_map, threads)
    return ladder


def _build(
    base_url: str | None,
    api_key: str | None,
    map_text: str,
    model_map: Mapping[Tier, str] | None,
    threads: int | None,
) -> Ladder:
    from tiered.models._openai import OpenAIModel

    names = dict(model_map or parse_model_map(map_text))
    breaker = CircuitBreaker()  # one per ladder: tiers that share a model share its state
    if base_url:
        catalog = default_catalog()
        missing = [t.value for t in Tier if t not in names]
        if missing:
            raise UserError(
                f"--base-url {base_url} needs a model for every tier (missing: "
                f"{', '.join(missing)}): set TIERED_MODELS='nano=NAME,mini=NAME,flagship=NAME'"
            )
        models: dict[Tier, Model] = {
            tier: RetryingModel(
                OpenAIModel(
                    names[tier],
                    base_url=base_url,
                    api_key=api_key or "not-needed",
                    tier=tier,
                    catalog=catalog,
                ),
                breaker=breaker,
            )
            for tier in Tier
        }
        listed = ", ".join(f"{t.value}={names[t]}" for t in Tier)
        return Ladder(models, f"OpenAI-compatible server at {base_url} ({listed})")
    if api_key:
        catalog = default_catalog()
        models = {
            tier: RetryingModel(
                OpenAIModel(names.get(tier) or catalog.for_tier(tier).name, api_key=api_key),
                breaker=breaker,
            )
            for tier in Tier
        }
        listed = ", ".join(f"{t.value}={m.spec.name}" for t, m in models.items())
        return Ladder(models, f"OpenAI ({listed}; OPENAI_API_KEY is set)")
    from tiered.models._local import local_ladder

    local = local_ladder(threads=threads)
    listed = ", ".join(f"{t.value}={m.spec.name}" for t, m in local.items())
    return Ladder(
        dict(local),
        f"embedded local models ({listed}); no OPENAI_API_KEY or TIERED_BASE_URL is set, "
        "so nothing leaves this machine and dollar figures are what OpenAI would charge",
    )
