"""The one seam to providers: a `Model` turns a `ModelRequest` into a `ModelResponse`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tiered._catalog import ModelSpec
from tiered._messages import ModelRequest, ModelResponse

__all__ = ("Model",)


@runtime_checkable
class Model(Protocol):
    """A chat model. Implement `spec` and one async `request`; wrap it to add behaviour."""

    @property
    def spec(self) -> ModelSpec:
        """Name, tier and prices used to meter this model's calls."""
        ...

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one request; raise a `ModelError` subclass on failure."""
        ...
