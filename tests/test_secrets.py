"""The API key never appears in an exception message, its cause/context chain, a full
formatted traceback, or a log line, even when the server echoes the key back."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import httpx2
import pytest
from structlog.testing import capture_logs

from tiered import ModelError, ModelRequest, UserMessage
from tiered.models import OpenAIModel, RetryingModel

pytestmark = pytest.mark.anyio

SECRET = "sk-proj-ECHOED-0123456789abcdef"
HELLO = ModelRequest(messages=(UserMessage(content="hi"),))


def echoing(status: int) -> httpx2.MockTransport:
    """A server that rejects every request and quotes the bearer token it got."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        token = request.headers.get("authorization", "")
        body = {
            "error": {
                "message": f"Incorrect API key provided: {token} (status {status})",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        }
        return httpx2.Response(status, json=body, headers={"x-echo": token})

    return httpx2.MockTransport(handler)


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def everything_about(exc: BaseException) -> str:
    parts = ["".join(traceback.format_exception(exc))]
    for e in chain(exc):
        parts += [str(e), repr(e), repr(vars(e)), repr(e.args)]
    return "\n".join(parts)


@pytest.mark.parametrize("status", [400, 401, 403, 500])
async def test_the_key_never_leaks_from_an_error(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx2.AsyncClient(transport=echoing(status)) as http:
        model = RetryingModel(
            OpenAIModel("gpt-5.4-nano", api_key=SECRET, http_client=http),
            max_attempts=2,
            base_delay=0.001,
        )
        with capture_logs() as logs, pytest.raises(ModelError) as info:
            await model.request(HELLO)
    exc = info.value
    assert "Incorrect API key provided: Bearer [redacted]" in str(exc)
    assert SECRET not in everything_about(exc)
    assert SECRET not in repr(logs)
    assert SECRET not in caplog.text
    assert all(e.__context__ is None or isinstance(e, ModelError) for e in chain(exc))


async def test_the_key_never_leaks_from_a_connection_failure() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(f"refused, and here is your key {SECRET}", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)) as http:
        model = OpenAIModel("gpt-5.4-nano", api_key=SECRET, http_client=http)
        with pytest.raises(ModelError) as info:
            await model.request(HELLO)
    assert SECRET not in everything_about(info.value)
