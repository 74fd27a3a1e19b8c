"""Test-suite guards: asyncio backend, no real remote model requests, no keys from the shell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from tiered.models import allow_remote_requests


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_remote_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any request to a non-loopback model fails; keys and base URLs from the shell are ignored."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TIERED_BASE_URL", "TIERED_MODELS"):
        monkeypatch.delenv(var, raising=False)
    allow_remote_requests(False)
    yield
    allow_remote_requests(True)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """`capture_logs()` leaves structlog configured; start every test unconfigured."""
    yield
    structlog.reset_defaults()
