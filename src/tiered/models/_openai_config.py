"""What an `OpenAIModel` is configured with: its spec (and so its prices), its key (held
where no repr shows it), and the User-Agent it sends."""

from __future__ import annotations

import os
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from tiered._catalog import Catalog, ModelSpec, Tier, default_catalog, self_hosted_spec
from tiered._errors import AuthenticationFailed, UnknownModel
from tiered.models._transport import host

__all__ = ("NO_KEY", "OPENAI_BASE_URL", "USER_AGENT", "Secret", "api_key", "resolve_spec")

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
NO_KEY: Final = "no-key"
"""Sent as the bearer token to a self-hosted server when no key is configured."""


def _own_version() -> str:
    """This package's version, for the User-Agent."""
    try:
        return version("tiered")
    except PackageNotFoundError:  # run from a source tree
        return "dev"


USER_AGENT: Final = f"tiered/{_own_version()}"


class Secret:
    """Holds an API key so that no repr, `vars()` dump or log line can show it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def api_key(given: Secret | None, base_url: str, model: str) -> str:
    """The key to send: the one given, else `OPENAI_API_KEY`, else (for a self-hosted
    server, which usually needs none) a placeholder; OpenAI itself without one is
    `AuthenticationFailed`."""
    key = given.value if given is not None else None
    key = key or os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if host(base_url) == host(OPENAI_BASE_URL):
        raise AuthenticationFailed(
            f"no API key for model {model!r}: set OPENAI_API_KEY or pass `api_key=` to OpenAIModel",
            model=model,
        )
    return NO_KEY


def resolve_spec(
    name: str,
    spec: ModelSpec | None,
    tier: Tier | None,
    catalog: Catalog | None,
    equivalent: str | None = None,
) -> ModelSpec:
    """The given spec, else the catalog's, else a self-hosted spec at `tier`: metered at
    its `equivalent`'s prices when one is named, else with no price known (never "$0")."""
    if spec is not None:
        return spec
    cat = catalog if catalog is not None else default_catalog()
    try:
        found = cat[name]
    except UnknownModel:
        if tier is None:
            raise
        return self_hosted_spec(name, tier, equivalent=equivalent, catalog=cat)
    return found if tier is None or found.tier is tier else replace(found, tier=tier)
