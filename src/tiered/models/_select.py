"""Pick the tier ladder from the environment: OpenAI, any compatible server, or local.

`OPENAI_API_KEY` -> the OpenAI tiers; `TIERED_BASE_URL` (or `base_url=`) -> any
OpenAI-compatible server with a tier-to-model map (`TIERED_MODELS`,
"nano=NAME,mini=NAME,flagship=NAME"); otherwise the embedded local ladder.

A self-hosted NAME can say which OpenAI model it stands in for, so runs on it are
metered at that model's prices: `NAME@gpt-5.4-nano`, or `NAME:gpt-5.4-nano` when the
part after the last colon is a catalog model (so Ollama's `qwen2.5:0.5b` stays a
name, and `qwen2.5:0.5b@gpt-5.4-nano` prices it). Without one its price is unknown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tiered._catalog import Catalog, ModelSpec, Tier, default_catalog, self_hosted_spec
from tiered._errors import UserError
from tiered.models._base import Model
from tiered.models._ladder import Ladder
from tiered.models._retry import CircuitBreaker, RetryingModel

__all__ = ("Ladder", "ladder_specs", "models_from_env", "parse_model_map", "split_equivalent")


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


def split_equivalent(text: str, catalog: Catalog | None = None) -> tuple[str, str | None]:
    """`qwen2.5:0.5b@gpt-5.4-nano` -> (`qwen2.5:0.5b`, `gpt-5.4-nano`); no suffix -> None.

    The suffix after the last `@`, or after the last `:`, is the equivalent when it is a
    catalog model; otherwise the whole text is the name (`qwen2.5:0.5b`, `m@2024`). An
    unknown `@gpt-...` suffix is a `UserError` (a mistyped equivalent, not a name).
    """
    cat = catalog if catalog is not None else default_catalog()
    for sep in ("@", ":"):
        name, found, suffix = text.rpartition(sep)
        if found and name and suffix in cat:
            return name, suffix
        if found and sep == "@" and suffix.startswith("gpt-"):
            raise UserError(
                f"{text!r} names {suffix!r} as the OpenAI model it stands in for, which the "
                f"catalog does not know: use one of {', '.join(cat)} (see `tiered models`)"
            )
    return text, None


def ladder_specs(
    names: Mapping[Tier, str], catalog: Catalog | None = None
) -> dict[Tier, ModelSpec | None]:
    """Per tier, the spec to meter a self-hosted model at (None: a catalog model)."""
    cat = catalog if catalog is not None else default_catalog()
    out: dict[Tier, ModelSpec | None] = {}
    for tier, text in names.items():
        name, equivalent = split_equivalent(text, cat)
        out[tier] = (
            None
            if name in cat and equivalent is None
            else self_hosted_spec(name, tier, equivalent=equivalent, catalog=cat)
        )
    return out


def _priced_as(spec: ModelSpec) -> str:
    """A model's name for the start-up banner, with how its calls are priced."""
    if spec.equivalent:
        return f"{spec.name} at {spec.equivalent} prices"
    return spec.name if spec.priced else f"{spec.name} (no price known)"


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
    names = dict(model_map or parse_model_map(map_text))
    breaker = CircuitBreaker()  # one per ladder: tiers that share a model share its state
    if base_url or api_key:
        from tiered.models._openai import OpenAIModel  # the SDK's import is slow: only here
    if base_url:
        catalog = default_catalog()
        missing = [t.value for t in Tier if t not in names]
        if missing:
            raise UserError(
                f"--base-url {base_url} needs a model for every tier (missing: "
                f"{', '.join(missing)}): set TIERED_MODELS='nano=NAME,mini=NAME,flagship=NAME'"
            )
        specs = ladder_specs(names, catalog)
        models: dict[Tier, Model] = {
            tier: RetryingModel(
                OpenAIModel(
                    split_equivalent(names[tier], catalog)[0],
                    spec=specs[tier],
                    base_url=base_url,
                    api_key=api_key or "not-needed",
                    tier=tier,
                    catalog=catalog,
                ),
                breaker=breaker,
            )
            for tier in Tier
        }
        listed = ", ".join(f"{t.value}={_priced_as(models[t].spec)}" for t in Tier)
        return Ladder(models, f"OpenAI-compatible server at {base_url} ({listed})")
    if api_key:
        catalog = default_catalog()
        models = {
            tier: RetryingModel(
                OpenAIModel(
                    split_equivalent(names.get(tier) or catalog.for_tier(tier).name)[0],
                    api_key=api_key,
                ),
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
        local,
        f"embedded local models ({listed}); no OPENAI_API_KEY or TIERED_BASE_URL is set, "
        "so nothing leaves this machine and dollar figures are what OpenAI would charge",
    )
