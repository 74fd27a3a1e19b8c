"""A switch that makes real remote model requests fail, so a test suite never spends money.

Call `allow_remote_requests(False)` in a test session (a conftest fixture); any model that
would reach a remote provider then raises `UserError`. Loopback servers and models given an
explicit client or HTTP transport are still allowed: that is how tests talk to fakes.
"""

from __future__ import annotations

__all__ = ("allow_remote_requests", "remote_requests_allowed")

_allowed = True


def allow_remote_requests(allowed: bool) -> None:
    """Allow (True, the default) or forbid (False) model requests to remote providers."""
    global _allowed
    _allowed = allowed


def remote_requests_allowed() -> bool:
    """Whether models may send requests to remote providers right now."""
    return _allowed
