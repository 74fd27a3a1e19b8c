"""Against the fault-injecting loopback server (bench/faults.py): pacing keeps under its
RPM/TPM limits, retries honour Retry-After, a 429 storm is waited out on the same model,
and under a mix of faults the ledger equals the usage the server reported."""

from __future__ import annotations

import itertools
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from pydantic import BaseModel

from bench_support import ROOT, load_bench
from tiered import (
    Agent,
    Ledger,
    ModelRequest,
    ModelResponse,
    ProviderError,
    ProviderUnreachable,
    TieredError,
    UserMessage,
    tool,
)
from tiered.models import CircuitBreaker, OpenAIModel, PacedModel, RateLimits, RetryingModel

load_bench()

from bench.faults import FaultServer  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


def request(subtask: str = "", max_output_tokens: int = 100) -> ModelRequest:
    return ModelRequest(
        messages=(UserMessage(content="Say hello."),),
        max_output_tokens=max_output_tokens,
        metadata={"subtask_id": subtask},
    )


def openai_model(server: FaultServer, **kwargs: Any) -> OpenAIModel:
    return OpenAIModel("gpt-5.4-nano", base_url=server.base_url, api_key="sk-test", **kwargs)


async def fan_out(model: Any, requests: list[ModelRequest]) -> list[ModelResponse]:
    out: list[ModelResponse] = []

    async def one(r: ModelRequest) -> None:
        out.append(await model.request(r))

    async with anyio.create_task_group() as tg:
        for r in requests:
            tg.start_soon(one, r)
    return out


async def test_pacing_keeps_under_the_servers_rpm(server: FaultServer) -> None:
    # 600 RPM scaled down: 60 requests per 6 s window, refilled at 10 per second; two
    # seconds of headroom, as a loaded CI machine can stall the event loop for one
    server.configure(rpm=60, window=6.0)
    limits = RateLimits(rpm=60, period=6.0, headroom=2.0)
    model = RetryingModel(PacedModel(openai_model(server), limits))
    started = time.monotonic()
    responses = await fan_out(model, [request(f"s{i}") for i in range(90)])
    elapsed = time.monotonic() - started
    stats = server.stats()
    assert len(responses) == 90
    assert stats["enforced_429"] == 0
    assert stats["requests"] == 90
    # a burst of 40 (the limit less two seconds of refill), then 50 at 10 per second: at
    # least 5 s less rounding (how close to the limit's pace it runs is bench.pacing's job)
    assert elapsed >= 4.5
    await model.aclose()


async def test_pacing_keeps_under_the_servers_tpm(server: FaultServer) -> None:
    server.configure(tpm=4_000, window=2.0, latency=0.1)
    limits = RateLimits(tpm=4_000, period=2.0)
    model = RetryingModel(PacedModel(openai_model(server), limits))
    responses = await fan_out(model, [request(max_output_tokens=500) for _ in range(30)])
    assert len(responses) == 30
    assert server.stats()["enforced_429"] == 0
    await model.aclose()


async def test_without_pacing_the_server_limits_and_retries_wait(server: FaultServer) -> None:
    server.configure(rpm=10, window=1.0)
    model = RetryingModel(openai_model(server))
    responses = await fan_out(model, [request() for _ in range(20)])
    assert len(responses) == 20
    assert server.stats()["enforced_429"] > 0  # the limit is real; the retries waited it out
    await model.aclose()


async def test_retries_honour_retry_after(server: FaultServer) -> None:
    server.configure(per_subtask={"a": ["429", "429", "500", ""]}, retry_after=0.3)
    model = RetryingModel(openai_model(server), base_delay=0.01)
    await model.request(request("a"))
    times = server.stats()["times"]["a"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4
    assert gaps[0] >= 0.3
    assert gaps[1] >= 0.3
    assert gaps[2] < 0.3  # the 500 got plain backoff
    await model.aclose()


async def test_a_429_storm_is_waited_out_on_the_same_model(server: FaultServer) -> None:
    server.configure(storm=1.5, retry_after=0.25)
    limits = RateLimits(rpm=10_000)
    model = RetryingModel(PacedModel(openai_model(server), limits))
    started = time.monotonic()
    responses = await fan_out(model, [request(f"s{i}") for i in range(20)])
    assert len(responses) == 20
    assert time.monotonic() - started >= 1.4
    stats = server.stats()
    assert stats["faults"]["storm"] >= 20
    assert all(n >= 2 for n in stats["calls"].values())
    await model.aclose()


class Answer(BaseModel):
    value: str


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


async def test_under_faults_the_ledger_equals_the_reported_usage(server: FaultServer) -> None:
    faults = {
        "500": 0.04,
        "503": 0.03,
        "drop": 0.03,
        "badjson": 0.03,
        "slow": 0.02,
        "bad_args": 0.02,
        "unknown_tool": 0.02,
        "schema": 0.01,
    }
    server.configure(faults=faults, slow=2.5, seed=7)
    # a read timeout well above a loaded machine's latency, well below a slow answer's
    inner = openai_model(server, read_timeout=1.5)
    model = RetryingModel(
        inner, base_delay=0.01, max_attempts=8, breaker=CircuitBreaker(threshold=99)
    )
    agent = Agent(name="worker", output_type=Answer, tools=[lookup], max_turns=6)
    ledger = Ledger()
    outcomes: dict[str, str] = {}
    in_flight = anyio.CapacityLimiter(50)

    async def one(i: int) -> None:
        try:
            async with in_flight:
                await agent.run(f"item {i}", model=model, ledger=ledger, subtask_id=f"t{i}")
            outcomes[f"t{i}"] = "succeeded"
        except TieredError as exc:
            outcomes[f"t{i}"] = type(exc).__name__

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(one, i)
    stats = server.stats()
    assert len(outcomes) == 200
    assert sum(stats["faults"].values()) > 0
    assert list(outcomes.values()).count("succeeded") >= 180, Counter(outcomes.values())
    reported = stats["reported"]
    assert ledger.usage.input_tokens == reported["prompt_tokens"]
    assert ledger.usage.output_tokens == reported["completion_tokens"]
    assert ledger.usage.requests == reported["requests"]
    unread = sum(stats["faults"].get(k, 0) for k in ("drop", "badjson", "slow"))
    assert ledger.possibly_billed.requests == unread
    assert unread > 0
    await model.aclose()


async def test_a_refused_connection_is_provider_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for transport in ("aiohttp", "httpx2"):
        model = OpenAIModel(
            "gpt-5.4-nano",
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="sk-test",
            transport=transport,
        )
        with pytest.raises(ProviderUnreachable) as info:
            await model.request(request())
        assert not info.value.possibly_billed
        assert "timed out" not in str(info.value).lower()
        await model.aclose()


async def test_the_subtask_is_sent_as_a_header(server: FaultServer) -> None:
    model = openai_model(server)
    await model.request(request("sub-1"))
    await model.request(request("sub-1"))
    assert server.stats()["calls"] == {"sub-1": 2}
    await model.aclose()


def test_cli_rpm_and_tpm_pace_the_ladder(
    server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from tiered._cli import main

    server.configure(rpm=100)
    models = "nano=gpt-5.4-nano,mini=gpt-5.4-mini,flagship=gpt-5.4"
    argv = ["run", str(ROOT / "examples" / "triage.py"), "--base-url", server.base_url]
    main([*argv, "--models", models, "--rpm", "100", "--tpm", "1_000_000", "--quiet"])
    err = capsys.readouterr().err
    assert "paced at RateLimits(rpm=100, tpm=1000000" in err
    assert server.stats()["requests"] >= 1  # the planner's calls went out through the pacer
    assert server.stats()["enforced_429"] == 0
    assert main(["run", "x.py", "--rpm", "0"]) == 2


async def test_default_timeouts_are_sized_from_the_output_cap() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.extensions["timeout"])
        return httpx2.Response(500, json={"error": {"message": "x"}})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        model = OpenAIModel("gpt-5.4-nano", api_key="sk-test", http_client=http)
        for cap in (4_096, 128_000):
            with pytest.raises(ProviderError):
                await model.request(request(max_output_tokens=cap))
    assert seen[0]["connect"] == 10.0
    assert seen[0]["read"] == pytest.approx(30 + 4_096 / 50)
    assert seen[1]["read"] == 600.0  # capped
