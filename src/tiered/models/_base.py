"""The one seam to providers: a `Model` turns a `ModelRequest` into a `ModelResponse`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tiered._catalog import ModelSpec
from tiered._messages import ModelRequest, ModelResponse

__all__ = ("Model",)


@runtime_checkable
class Model(Protocol):
    """A chat model: `spec`, one async `request`, and `aclose`; wrap it to add behaviour.

    `aclose` releases what the model holds (an HTTP client, a server slot); a model
    that holds nothing implements it as a no-op, so wrappers never look for it.
    """

    @property
    def spec(self) -> ModelSpec:
        """Name, tier and prices used to meter this model's calls."""
        ...

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one request; raise a `ModelError` subclass on failure."""
        ...

    async def aclose(self) -> None:
        """Release the model's resources; it may reopen them on the next request."""
        ...
