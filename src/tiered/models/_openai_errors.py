"""The one boundary where the openai SDK's and the HTTP transport's exceptions become our
`ModelError` tree, with the API key scrubbed from every message, and where the response
headers that steer a retry (`Retry-After`, `x-ratelimit-*`) are read.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import openai

from tiered._errors import (
    AuthenticationFailed,
    ContextTooLong,
    ModelError,
    ModelTimeout,
    ProviderError,
    ProviderUnreachable,
    RateLimited,
)
from tiered._ratelimit import RateLimitInfo
from tiered.models._transport import CONNECT_TIMEOUT_S, failure_kind

__all__ = ("TIMEOUT_OR_TRANSPORT", "ErrorConverter", "rate_limit_info", "retry_after")

_REDACTED: Final = "[redacted]"
_DETAIL_MAX: Final = 300


def _transport_errors() -> tuple[type[Exception], ...]:
    """aiohttp's own errors, which its SDK transport lets through unconverted."""
    try:
        import aiohttp
    except ImportError:
        return ()
    return (aiohttp.ClientError,)


TIMEOUT_OR_TRANSPORT: Final[tuple[type[Exception], ...]] = (
    TimeoutError,
    OSError,
    *_transport_errors(),
)
"""What a request can raise past the SDK's own conversion: timeouts, socket errors, aiohttp's."""


@dataclass(frozen=True, slots=True)
class ErrorConverter:
    """Turns one model's SDK and transport exceptions into `ModelError`s that say what to fix;
    `secrets` (the keys in use) never reach a message."""

    model: str
    base_url: str
    secrets: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        """`text` without the API key (some servers echo the key they rejected)."""
        for key in self.secrets:
            if key and key in text:
                text = text.replace(key, _REDACTED)
        return text

    def convert(self, exc: openai.OpenAIError, read_timeout: float) -> ModelError:
        """Our `ModelError` for one of openai's exceptions."""
        if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
            return self.transport_failure(exc, read_timeout)
        if not isinstance(exc, openai.APIStatusError):
            return ModelError(
                f"the OpenAI client failed for model {self.model!r}: {self.scrub(str(exc))}",
                model=self.model,
            )
        headers = exc.response.headers
        error = self._status_error(exc.status_code, headers, exc.body, exc.message)
        error.rate_limit = rate_limit_info(headers, headers.raw)
        return error

    def status_failure(
        self,
        status: int,
        headers: Mapping[str, str],
        raw_headers: Iterable[tuple[bytes, bytes]],
        content: bytes,
    ) -> ModelError:
        """Our `ModelError` for a non-2xx answer read without the SDK, its body read as the
        SDK reads it: the `error` object of a JSON body (else the body, else its text), and
        "Error code: N - message" as the SDK's exception message."""
        text = content.decode("utf-8", "replace").strip()
        message = f"Error code: {status}"
        body: object = text
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(body, dict):
                body = body.get("error", body)
                said = body.get("message") if isinstance(body, dict) else None
                if isinstance(said, str) and said:
                    message += f" - {said}"
        error = self._status_error(status, headers, body, message)
        error.rate_limit = rate_limit_info(headers, raw_headers)
        return error

    def transport_failure(self, exc: BaseException, read_timeout: float) -> ModelError:
        """Our `ModelError` for a connection failure or timeout, by what the chain says:
        refused (never sent), connect timeout (never sent), read timeout or dropped
        mid-answer (sent: possibly billed)."""
        name, where = self.model, self.base_url
        kind, cause = failure_kind(exc)
        what = self.scrub(f"{type(cause).__name__}: {cause}")[:_DETAIL_MAX]
        if kind == "unreachable":
            return ProviderUnreachable(
                f"could not connect to {where} for model {name!r} ({what}): check the server "
                "is up and the base_url",
                model=name,
            )
        if kind == "connect_timeout":
            return ModelTimeout(
                f"no connection to {where} for model {name!r} within {CONNECT_TIMEOUT_S:g}s: "
                "check the network and the base_url",
                model=name,
            )
        if kind == "read_timeout":
            error: ModelError = ModelTimeout(
                f"model {name!r} at {where} did not answer within {read_timeout:g}s: lower "
                "max_output_tokens, raise `read_timeout=`, or check the server",
                model=name,
            )
        else:
            error = ProviderError(
                f"the connection to {where} for model {name!r} failed mid-request ({what}): "
                "usually transient",
                model=name,
            )
        error.possibly_billed = True
        return error

    def _status_error(
        self, status: int, headers: Mapping[str, str], body: object, message: str
    ) -> ModelError:
        name = self.model
        detail = self.scrub(_provider_message(body, message))
        code = body.get("code") if isinstance(body, dict) else None
        if status == 429:
            if code == "insufficient_quota":
                return ModelError(
                    f"the provider says the quota is used up for model {name!r} ({detail}): "
                    "check the account's plan and billing",
                    model=name,
                    status=status,
                )
            return RateLimited(model=name, retry_after=retry_after(headers))
        if status in (401, 403):
            return AuthenticationFailed(
                f"the provider rejected the credentials for model {name!r} ({status}: "
                f"{detail}): set OPENAI_API_KEY or pass `api_key=` with a key allowed to use it",
                model=name,
                status=status,
            )
        if status in (400, 413) and _is_context_overflow(body, detail):
            return ContextTooLong(
                f"the request does not fit model {name!r}'s context window ({detail}): "
                "shorten the input or route it to a tier with a larger context",
                model=name,
                status=status,
            )
        if status == 408:
            return ModelTimeout(
                f"model {name!r} timed out at the provider ({detail}): retry, or shorten the "
                "request",
                model=name,
                status=status,
            )
        if status >= 500:
            return ProviderError(
                f"the provider failed with {status} for model {name!r} ({detail}): usually "
                "transient",
                model=name,
                status=status,
            )
        if status == 404:
            return ModelError(
                f"not found at {self.base_url} for model {name!r} ({detail}): check the model "
                "name and that base_url ends in the API root (for example .../v1)",
                model=name,
                status=status,
            )
        return ModelError(
            f"the provider rejected the request for model {name!r} ({status}: {detail}): fix "
            "the request (tools, output schema, options) for what this model supports",
            model=name,
            status=status,
        )


def rate_limit_info(
    headers: Mapping[str, str], raw: Iterable[tuple[bytes, bytes]]
) -> RateLimitInfo | None:
    """`x-ratelimit-*` headers, looked up only when one is there (one pass over the `raw`
    pairs; most self-hosted servers send none)."""
    for key, _ in raw:
        if key[:12].lower() == b"x-ratelimit-":
            return RateLimitInfo.from_headers(headers)
    return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `Retry-After` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            delay = float(ms) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(delay):
                return max(delay, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return max(delay, 0.0) if math.isfinite(delay) else None


def _provider_message(body: object, message: str) -> str:
    """The provider's own error message, without the SDK's prefix."""
    if isinstance(body, dict):
        text = body.get("message")
        if isinstance(text, str) and text:
            return text
    if isinstance(body, str) and body:
        return body[:500]
    return message


def _is_context_overflow(body: object, detail: str) -> bool:
    """Whether a 400 says the request is longer than the context window.

    OpenAI sets `code`; vLLM and llama.cpp only say so in the message or `type`.
    """
    if isinstance(body, dict) and (
        body.get("code") == "context_length_exceeded"
        or body.get("type") == "exceed_context_size_error"
    ):
        return True
    text = detail.lower()
    return "maximum context length" in text or "context size" in text
