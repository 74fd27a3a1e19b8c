"""Limits that hold: budget reservations, metering of every attempt, retries that wait,
the circuit breaker, and the pacing buckets (no network: scripted models)."""

from __future__ import annotations

import time
from decimal import Decimal

import anyio
import pytest

from tiered import (
    Agent,
    AssistantMessage,
    BadModelResponse,
    Budget,
    BudgetExceeded,
    Ledger,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    ModelTimeout,
    ModelUnavailable,
    PriceBreak,
    Pricing,
    ProviderError,
    RateLimited,
    RateLimitInfo,
    ScriptedModel,
    Tier,
    Usage,
    UserMessage,
    default_catalog,
)
from tiered.models import CircuitBreaker, PacedModel, RateLimits, RetryingModel
from tiered.models._scripted import ScriptStep

pytestmark = pytest.mark.anyio

NANO = default_catalog()["gpt-5.4-nano"]
HELLO = ModelRequest(messages=(UserMessage(content="hello"),), max_output_tokens=100)


# --- reservations ---------------------------------------------------------------------


def test_reservation_holds_the_worst_case_until_settled() -> None:
    ledger = Ledger(Budget(usd=NANO.cost(Usage(input_tokens=1_000, output_tokens=1_000)) * 2))
    first = ledger.reserve(NANO, 1_000, 1_000)
    second = ledger.reserve(NANO, 1_000, 1_000)
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(NANO, 1, 1)
    assert info.value.needed is not None
    first.settle(Usage(input_tokens=100, output_tokens=10, requests=1))
    second.release()
    assert ledger.held_dollars == 0
    assert ledger.usage == Usage(input_tokens=100, output_tokens=10, requests=1)
    ledger.reserve(NANO, 1_000, 1_000).release()  # room again once settled


def test_reservation_prices_the_long_context_rate() -> None:
    spec = ModelSpec(
        name="m",
        tier=Tier.NANO,
        context_window=1_000_000,
        max_output_tokens=1_000,
        pricing=Pricing(
            input=Decimal(1),
            cached_input=Decimal(0),
            output=Decimal(1),
            breaks=(
                PriceBreak(
                    input_tokens=1_000,
                    input=Decimal(10),
                    cached_input=Decimal(0),
                    output=Decimal(10),
                ),
            ),
        ),
    )
    ledger = Ledger(Budget(usd=Decimal("0.0100")))
    ledger.reserve(spec, 999, 1).release()  # $0.001 at the base rate
    with pytest.raises(BudgetExceeded):
        ledger.reserve(spec, 1_001, 0)  # over the break: every token at 10x -> $0.01001


def test_requests_and_tokens_budgets_count_holds() -> None:
    ledger = Ledger(Budget(requests=2, tokens=1_000))
    ledger.reserve(NANO, 100, 100)
    with pytest.raises(BudgetExceeded, match="tokens"):
        ledger.reserve(NANO, 700, 200)
    ledger.reserve(NANO, 100, 100)
    with pytest.raises(BudgetExceeded, match="requests"):
        ledger.reserve(NANO, 1, 1)


def test_abandoned_call_is_possibly_billed_and_counted() -> None:
    ledger = Ledger(Budget(requests=1))
    charge = ledger.reserve(NANO, 200, 100).abandon()
    assert charge.possibly_billed
    assert ledger.usage == Usage()  # not what the provider reported
    assert ledger.possibly_billed == Usage(input_tokens=200, output_tokens=100, requests=1)
    assert ledger.budget_dollars == charge.cost > 0
    with pytest.raises(BudgetExceeded, match="requests"):
        ledger.reserve(NANO, 1, 1)


async def test_64_concurrent_runs_never_exceed_a_dollar_budget() -> None:
    async def slow_answer(request: ModelRequest) -> ScriptStep:
        await anyio.sleep(0.01)
        return "done " * 50

    budget = Decimal("0.002")
    ledger = Ledger(Budget(usd=budget))
    model = ScriptedModel(slow_answer, spec=NANO)
    agent = Agent(name="w", instructions="work", max_output_tokens=500)
    outcomes: list[str] = []

    async def one(i: int) -> None:
        try:
            await agent.run(f"item {i}", model=model, ledger=ledger)
            outcomes.append("ok")
        except BudgetExceeded:
            outcomes.append("refused")

    async with anyio.create_task_group() as tg:
        for i in range(64):
            tg.start_soon(one, i)
    assert ledger.budget_dollars <= budget
    assert ledger.held_dollars == 0
    assert "ok" in outcomes
    assert "refused" in outcomes
    assert len(model.requests) == outcomes.count("ok")


# --- metering -------------------------------------------------------------------------


async def test_a_response_that_fails_to_parse_is_still_metered() -> None:
    broken = BadModelResponse("no choices", model="m")
    broken.usage = Usage(input_tokens=300, output_tokens=1_024, requests=1)
    ledger = Ledger()
    model = RetryingModel(ScriptedModel([broken, "fine"], spec=NANO), base_delay=0.001)
    result = await Agent(name="a").run("go", model=model, ledger=ledger)
    assert result.output == "fine"
    assert ledger.usage.output_tokens >= 1_024
    assert ledger.usage.requests == 2
    assert result.usage == ledger.usage


async def test_a_failed_run_reports_the_usage_of_its_attempts() -> None:
    broken = BadModelResponse("unreadable", model="m")
    broken.usage = Usage(input_tokens=10, output_tokens=20, requests=1)
    ledger = Ledger()
    with pytest.raises(BadModelResponse) as info:
        await Agent(name="a").run("go", model=ScriptedModel([broken], spec=NANO), ledger=ledger)
    assert info.value.usage == Usage(input_tokens=10, output_tokens=20, requests=1)
    assert ledger.usage == info.value.usage


async def test_a_cancelled_call_is_possibly_billed() -> None:
    async def hang(request: ModelRequest) -> ScriptStep:
        await anyio.sleep(60)
        return "never"

    ledger = Ledger()
    with anyio.move_on_after(0.05):
        await Agent(name="a").run("go", model=ScriptedModel(hang, spec=NANO), ledger=ledger)
    assert ledger.usage.requests == 0
    assert ledger.possibly_billed.requests == 1
    assert ledger.budget_dollars > 0
    assert ledger.held_dollars == 0


async def test_a_timed_out_retry_is_possibly_billed_and_the_retry_reserved() -> None:
    timeout = ModelTimeout("slow", model="m")
    timeout.possibly_billed = True
    ledger = Ledger()
    model = RetryingModel(ScriptedModel([timeout, "ok"], spec=NANO), base_delay=0.001)
    await Agent(name="a").run("go", model=model, ledger=ledger)
    assert ledger.possibly_billed.requests == 1
    assert ledger.usage.requests == 1
    assert [c.possibly_billed for c in ledger.charges] == [True, False]


async def test_a_retry_that_no_longer_fits_the_budget_is_refused() -> None:
    timeout = ModelTimeout("slow", model="m")
    timeout.possibly_billed = True
    worst = NANO.cost(Usage(input_tokens=200, output_tokens=100))
    ledger = Ledger(Budget(usd=worst * Decimal("1.5")))
    inner = ScriptedModel([timeout, "never"], spec=NANO)
    model = RetryingModel(inner, base_delay=0.001)
    with pytest.raises(BudgetExceeded):
        await Agent(name="a", max_output_tokens=100).run("go", model=model, ledger=ledger)
    assert len(inner.requests) == 1
    assert ledger.budget_dollars <= worst * Decimal("1.5")


# --- retries and the breaker ----------------------------------------------------------


async def test_no_retry_sleeps_past_the_deadline() -> None:
    inner = ScriptedModel([RateLimited(model="m", retry_after=30), "never"])
    started = time.monotonic()
    with anyio.fail_after(5), pytest.raises(RateLimited):
        await RetryingModel(inner).request(HELLO)
    assert time.monotonic() - started < 1


async def test_no_retry_sleeps_past_a_callers_deadline() -> None:
    inner = ScriptedModel([RateLimited(model="m", retry_after=2), "never"])
    with anyio.move_on_after(1) as scope, pytest.raises(RateLimited):
        await RetryingModel(inner).request(HELLO)
    assert not scope.cancelled_caught


async def test_the_breaker_cools_a_failing_model_down_then_probes() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=0.2)
    failures: list[ScriptStep] = [ProviderError("down", model="m") for _ in range(3)]
    inner = ScriptedModel([*failures, "back"])
    model = RetryingModel(inner, max_attempts=10, base_delay=0.001, breaker=breaker)
    with pytest.raises(ModelUnavailable) as info:
        await model.request(HELLO)
    assert not info.value.retryable
    assert not info.value.rate_limited
    assert len(inner.requests) == 3
    with pytest.raises(ModelUnavailable):  # open: refused without a call
        await model.request(HELLO)
    assert len(inner.requests) == 3
    await anyio.sleep(0.25)
    response = await model.request(HELLO)  # half-open probe succeeds
    assert response.message.content == "back"
    assert not breaker.is_open(inner.spec.name)


async def test_rate_limits_never_open_the_breaker() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=60)
    storm: list[ScriptStep] = [RateLimited(model="m", retry_after=0.001) for _ in range(5)]
    inner = ScriptedModel([*storm, "ok"])
    response = await RetryingModel(inner, breaker=breaker).request(HELLO)
    assert response.message.content == "ok"
    assert not breaker.is_open(inner.spec.name)


async def test_client_errors_are_not_retried() -> None:
    from tiered import AuthenticationFailed, ContextTooLong

    for error in (AuthenticationFailed("no", model="m"), ContextTooLong("long", model="m")):
        inner = ScriptedModel([error, "never"])
        with pytest.raises(type(error)):
            await RetryingModel(inner, base_delay=0.001).request(HELLO)
        assert len(inner.requests) == 1


async def test_backoff_has_full_jitter_within_the_exponential_ceiling() -> None:
    model = RetryingModel(ScriptedModel(["x"]), base_delay=1.0, max_delay=8.0)
    delays = [model._delay(4, ProviderError("x")) for _ in range(200)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert min(delays) < 2.0 < max(delays)  # spread over the whole range, not 0.5x-1.5x


# --- pacing ---------------------------------------------------------------------------


async def test_requests_bucket_spaces_calls_after_the_burst() -> None:
    limits = RateLimits(rpm=5, period=0.5, headroom=0)  # 5 at once, then one every 0.1 s
    model = PacedModel(ScriptedModel(lambda r: "ok"), limits)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(model.request, HELLO)
    assert 0.45 <= time.monotonic() - started < 1.5


async def test_tokens_bucket_counts_the_estimate_then_the_real_usage() -> None:
    limits = RateLimits(tpm=1_000, period=1.0)
    model = PacedModel(ScriptedModel(lambda r: "ok"), limits)
    big = ModelRequest(messages=(UserMessage(content="x"),), max_output_tokens=900)
    started = time.monotonic()
    for _ in range(3):  # each reserves ~900 tokens but reports ~5: refunded at once
        await model.request(big)
    assert time.monotonic() - started < 0.3


async def test_headers_lower_the_limit_and_the_level() -> None:
    limits = RateLimits(rpm=1_000, period=1.0)
    limits.observe("m", RateLimitInfo(limit_requests=10, remaining_requests=0))
    assert limits.limits("m") == (10.0, None)
    started = time.monotonic()
    await limits.acquire("m", 1)
    assert time.monotonic() - started >= 0.08  # one slot at 10 per second


async def test_unconfigured_limits_are_learned_from_headers() -> None:
    answer = ModelResponse(
        message=AssistantMessage(content="ok"),
        usage=Usage(requests=1),
        model_name="scripted",
        rate_limit=RateLimitInfo(limit_requests=600, remaining_requests=599),
    )
    limits = RateLimits()
    model = PacedModel(ScriptedModel([answer]), limits)
    await model.request(HELLO)
    assert limits.limits("scripted") == (600.0, None)


async def test_a_429_pauses_every_caller_of_that_model() -> None:
    limits = RateLimits(rpm=1_000)
    model = PacedModel(ScriptedModel([RateLimited(model="m", retry_after=0.3), "ok"]), limits)
    with pytest.raises(RateLimited):
        await model.request(HELLO)
    started = time.monotonic()
    await model.request(HELLO)
    assert time.monotonic() - started >= 0.25


def test_rate_limit_headers_parse_openai_durations() -> None:
    info = RateLimitInfo.from_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": "150000",
            "x-ratelimit-reset-tokens": "6m0.5s",
        }
    )
    assert info == RateLimitInfo(
        limit_requests=500,
        remaining_requests=499,
        reset_requests=0.12,
        limit_tokens=200_000,
        remaining_tokens=150_000,
        reset_tokens=360.5,
    )
    assert RateLimitInfo.from_headers({}) is None
    assert RateLimitInfo.from_headers({"x-ratelimit-reset-tokens": "soon"}) is None


def test_without_retry_after_the_exhausted_buckets_reset_is_the_wait() -> None:
    limited = RateLimited(model="m")
    limited.rate_limit = RateLimitInfo(
        remaining_requests=0, reset_requests=0.25, remaining_tokens=900, reset_tokens=9.0
    )
    assert RetryingModel(ScriptedModel(["x"]))._delay(1, limited) == 0.25


async def test_a_cancelled_probe_does_not_leave_the_circuit_half_open() -> None:
    async def hang(request: ModelRequest) -> ScriptStep:
        await anyio.sleep(60)
        return "never"

    breaker = CircuitBreaker(threshold=1, cooldown=0.05)
    name = "scripted"
    breaker.failure(name)  # open
    await anyio.sleep(0.06)
    model = RetryingModel(ScriptedModel(hang), breaker=breaker)
    with anyio.move_on_after(0.05):
        await model.request(HELLO)  # the probe, cancelled
    assert not breaker.is_open(name)  # the next call may probe again
    assert breaker.before(name) is True


def test_a_stalled_queue_sends_one_burst_not_everything_the_stall_accrued() -> None:
    from tiered.models._buckets import Bucket

    bucket = Bucket(limit=40, period=2.0, headroom=1.0, stamp=0.0)  # burst 20, 20/s
    marks = [bucket.take(1, 0.0) for _ in range(60)]  # 60 callers queue at once
    for mark in marks[:20]:
        assert bucket.wait_for(mark, 0.0) == 0
        bucket.grant(mark)
    # the event loop stalls for 3 s (60 tokens' worth) before the queue looks again: the
    # provider's bucket, idle meanwhile, holds at most its capacity, so must we
    assert bucket.wait_for(marks[39], 3.0) == 0
    assert bucket.wait_for(marks[40], 3.0) > 0
