"""The run journal's promises, in process: resume restores the spend (report, budget,
JSON), a changed plan re-runs what changed and nothing else, and side-effecting tools
run exactly once when they finished, at least once (under the same idempotency key)
when they were in flight at the crash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import traceback
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

from orchestration_support import Echo, Text, last_user, subtask
from tiered import (
    Agent,
    AssistantMessage,
    Budget,
    ComposeFinished,
    Journal,
    Limits,
    ModelRequest,
    ModelResponse,
    Orchestrator,
    Plan,
    RunContext,
    RunEvent,
    RunStatus,
    ScriptedModel,
    SubtaskEscalated,
    SubtaskStarted,
    SubtaskStatus,
    Tier,
    TieredError,
    ToolResultMessage,
    Usage,
    default_catalog,
    tool,
)
from tiered._journal import list_runs
from tiered.models import Model, OpenAIModel, call

pytestmark = pytest.mark.anyio

NANO = default_catalog().for_tier(Tier.NANO)
USAGE = Usage(input_tokens=1_500_000, output_tokens=0, requests=1)
PER_CALL = NANO.cost(USAGE)  # $0.30 a call


class Crash(BaseException):
    """Stands in for the process dying: nothing in tiered handles it."""


def fixed(output: Any) -> ModelResponse:
    """An answer billed at exactly `USAGE`."""
    return ModelResponse(
        message=AssistantMessage(content=json.dumps(output)),
        usage=USAGE,
        model_name=NANO.name,
        finish_reason="stop",
    )


def models(responder: Any) -> dict[Tier, Model]:
    return {t: ScriptedModel(responder, spec=default_catalog().for_tier(t)) for t in Tier}


def dies_at(sid: str) -> Callable[[RunEvent], None]:
    """An event sink that kills the run as `sid` starts (no model call is in flight)."""

    def sink(event: RunEvent) -> None:
        if isinstance(event, SubtaskStarted) and event.subtask_id == sid:
            raise Crash

    return sink


def four() -> Plan:
    return Plan(subtasks=tuple(subtask(s) for s in "abcd"))


# --- resume restores the spend ----------------------------------------------------------


async def test_the_resumed_report_and_json_count_what_was_spent_before_the_crash(
    tmp_path: Path,
) -> None:
    asked: list[str] = []

    def responder(request: ModelRequest) -> Any:
        asked.append(request.metadata["subtask_id"])
        return fixed({"text": request.metadata["subtask_id"]})

    orch = Orchestrator([Echo()], models=models(responder), limits=Limits(concurrency=1))
    with pytest.raises(BaseExceptionGroup):
        await orch.run(
            "spend", plan=four(), compose=False, journal=tmp_path / "run", on_event=dies_at("c")
        )
    assert asked == ["a", "b"]  # two calls billed, then the process died
    result = await orch.resume(tmp_path / "run", compose=False)

    assert asked[2:] == ["c", "d"]
    assert result.status is RunStatus.SUCCEEDED
    assert result.usage.requests == 4
    assert result.usage.input_tokens == 4 * USAGE.input_tokens
    assert result.cost == 4 * PER_CALL == Decimal("1.2")
    assert result.by_tier[Tier.NANO].usage.requests == 4
    data = json.loads(result.to_json())
    assert Decimal(data["cost"]) == 4 * PER_CALL
    assert data["usage"]["requests"] == 4
    assert "$1.2" in result.report()
    # the restored subtasks keep the attempts (and dollars) of the session that ran them
    assert result.subtasks["a"].restored
    assert result.subtasks["a"].cost == PER_CALL
    (row,) = list_runs(tmp_path)
    assert (row.status, row.requests, Decimal(row.usd)) == ("succeeded", 4, 4 * PER_CALL)


async def test_a_subtask_cut_off_mid_way_keeps_the_attempts_it_paid_for(tmp_path: Path) -> None:
    def responder(request: ModelRequest) -> Any:
        return fixed({"text": "answer"})

    def crash_on_escalation(event: RunEvent) -> None:
        if isinstance(event, SubtaskEscalated):
            raise Crash  # the first (rejected) attempt is booked, the second not begun

    verdicts = iter(["wrong", None, None])
    orch = Orchestrator(
        [Echo()], models=models(responder), verify={"Echo": lambda s, o: next(verdicts)}
    )
    plan = Plan(subtasks=(subtask("a"),))
    with pytest.raises(BaseExceptionGroup):
        await orch.run(
            "x", plan=plan, compose=False, journal=tmp_path / "r", on_event=crash_on_escalation
        )
    result = await orch.resume(tmp_path / "r", compose=False)
    assert result.status is RunStatus.SUCCEEDED
    attempts = result.subtasks["a"].attempts
    assert [a.outcome for a in attempts] == ["verifier_rejected", "succeeded"]
    assert [a.number for a in attempts] == [1, 2]
    assert result.cost == 2 * PER_CALL
    assert sum(a.cost for a in attempts) == result.cost  # the subtasks add up to the run


async def test_an_answer_composed_before_the_crash_is_not_paid_for_again(tmp_path: Path) -> None:
    composed: list[str] = []

    def responder(request: ModelRequest) -> Any:
        if "final answer of a run" in str(request.messages[0].content):  # composing
            composed.append("yes")
            answer = fixed({})
            return dataclasses.replace(
                answer, message=AssistantMessage(content="the answer: a and b")
            )
        return fixed({"text": request.metadata["subtask_id"]})

    def crash_after_compose(event: RunEvent) -> None:
        if isinstance(event, ComposeFinished):
            raise Crash

    orch = Orchestrator([Echo()], models=models(responder))
    plan = Plan(subtasks=(subtask("a"), subtask("b")))
    with pytest.raises(Crash):  # compose runs outside any task group: it arrives bare
        await orch.run("x", plan=plan, journal=tmp_path / "r", on_event=crash_after_compose)
    assert composed == ["yes"]
    result = await orch.resume(tmp_path / "r")
    assert composed == ["yes"]  # restored, not asked again
    assert result.status is RunStatus.SUCCEEDED
    assert result.final_answer == "the answer: a and b"
    flagship = default_catalog().for_tier(Tier.FLAGSHIP).cost(USAGE)
    assert result.cost == 2 * PER_CALL + flagship  # two subtasks and one compose, paid once


@pytest.mark.parametrize(
    "budget",
    [Budget(requests=3), Budget(usd=Decimal("0.90"))],
    ids=["requests", "dollars"],
)
async def test_a_budget_spent_before_the_crash_stops_the_resumed_run(
    tmp_path: Path, budget: Budget
) -> None:
    asked: list[str] = []

    def responder(request: ModelRequest) -> Any:
        asked.append(request.metadata["subtask_id"])
        return fixed({"text": request.metadata["subtask_id"]})

    orch = Orchestrator(
        [Echo()], models=models(responder), limits=Limits(concurrency=1), budget=budget
    )
    with pytest.raises(BaseExceptionGroup):
        await orch.run(
            "budget", plan=four(), compose=False, journal=tmp_path / "run", on_event=dies_at("c")
        )
    assert asked == ["a", "b"]
    result = await orch.resume(tmp_path / "run", compose=False)

    # 2 requests ($0.60) were spent before the crash: room for one more call, not two
    assert asked[2:] == ["c"]
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.subtasks["c"].status is SubtaskStatus.SUCCEEDED
    assert result.subtasks["d"].status is SubtaskStatus.SKIPPED
    assert result.usage.requests == 3
    assert result.cost == 3 * PER_CALL


# --- a changed plan re-runs what changed ------------------------------------------------


def digest_responder(asked: list[str], constant: str = "") -> Any:
    """Each subtask's output is a hash of its whole prompt (its arguments, instructions
    and the outputs it was given), except `constant`'s, which never changes."""

    def responder(request: ModelRequest) -> Any:
        sid = request.metadata["subtask_id"]
        asked.append(sid)
        if sid == constant:
            return {"text": "same"}
        return {"text": hashlib.sha256(last_user(request).encode()).hexdigest()[:12]}

    return responder


def diamond(b_text: str = "x", b_instructions: str = "do b") -> Plan:
    b = subtask("b", text=b_text).model_copy(update={"instructions": b_instructions})
    return Plan(subtasks=(subtask("a"), b, subtask("c", "b"), subtask("d", "a")))


async def test_changed_arguments_rerun_that_subtask_and_its_dependents_only(
    tmp_path: Path,
) -> None:
    asked: list[str] = []
    orch = Orchestrator([Echo()], models=models(digest_responder(asked)))
    first = await orch.run("plan", plan=diamond(), compose=False, journal=tmp_path / "run")
    assert sorted(asked) == ["a", "b", "c", "d"]

    asked.clear()
    second = await orch.run(
        "plan", plan=diamond(b_text="changed"), compose=False, journal=tmp_path / "run"
    )

    assert sorted(asked) == ["b", "c"]
    assert {s for s, r in second.subtasks.items() if r.restored} == {"a", "d"}
    assert second.outputs["a"] == first.outputs["a"]
    assert second.outputs["d"] == first.outputs["d"]
    assert second.outputs["b"] != first.outputs["b"]
    assert second.outputs["c"] != first.outputs["c"]  # its input changed, so it ran again
    assert Journal(tmp_path / "run").plan == diamond(b_text="changed")  # the new plan is kept

    asked.clear()  # back to the first plan: b and c are recomputed, not mixed up
    third = await orch.run("plan", plan=diamond(), compose=False, journal=tmp_path / "run")
    assert sorted(asked) == ["b", "c"]
    assert third.outputs == first.outputs


async def test_a_dependent_is_restored_when_its_inputs_come_out_the_same(
    tmp_path: Path,
) -> None:
    asked: list[str] = []
    orch = Orchestrator([Echo()], models=models(digest_responder(asked, constant="b")))
    await orch.run("plan", plan=diamond(), compose=False, journal=tmp_path / "run")

    asked.clear()
    result = await orch.run(
        "plan", plan=diamond(b_instructions="do b again"), compose=False, journal=tmp_path / "run"
    )

    assert asked == ["b"]  # new instructions: b re-runs; it says the same, so c stands
    assert {s for s, r in result.subtasks.items() if r.restored} == {"a", "c", "d"}


async def test_a_restored_output_keeps_its_type(tmp_path: Path) -> None:
    orch = Orchestrator([Echo()], models=models(lambda r: {"text": "typed"}))
    await orch.run("typed", plan=four(), compose=False, journal=tmp_path / "run")
    again = await orch.resume(tmp_path / "run", compose=False)
    assert all(r.restored for r in again.subtasks.values())
    assert again.outputs["a"] == Text(text="typed")


class Count(BaseModel):
    n: int


class CountingEcho(Agent[Count]):
    """The Echo agent of a later release, whose output type changed."""

    name = "Echo"
    instructions = "Upper-case the text."
    input_type = Text
    output_type = Count


async def test_an_output_of_a_changed_type_is_computed_again(tmp_path: Path) -> None:
    orch = Orchestrator([Echo()], models=models(lambda r: {"text": "old"}))
    await orch.run("types", plan=four(), compose=False, journal=tmp_path / "run")
    later = Orchestrator([CountingEcho()], models=models(lambda r: {"n": 3}))
    result = await later.resume(tmp_path / "run", compose=False)
    assert result.status is RunStatus.SUCCEEDED
    assert not any(r.restored for r in result.subtasks.values())
    assert result.outputs["a"] == Count(n=3)


# --- side effects -----------------------------------------------------------------------


class Book:
    """What the side-effecting tool really did, across sessions."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.crash_inside = False
        self.fail_once = False


@tool(side_effects=True)
async def pay(ctx: RunContext[Book], amount: int) -> str:
    """Pay `amount` (a side effect).

    Args:
        amount: cents.
    """
    book = ctx.deps
    book.keys.append(ctx.idempotency_key)
    if book.crash_inside:
        raise Crash  # the process dies after the payment went out, before it was journaled
    if book.fail_once:
        book.fail_once = False
        raise ValueError("the payment API said no")
    return f"receipt-{len(book.keys)}"


class Payer(Agent[Text, Book]):
    """Pays."""

    instructions = "Pay, then report."
    input_type = Text
    output_type = Text
    tools = (pay,)


def payer_responder(seen: list[str], *, crash_after_tool: list[bool]) -> Any:
    """Ask for pay(5) twice (two distinct payments); once the results are in, answer
    with what they said, or die first while `crash_after_tool[0]` is set."""

    def responder(request: ModelRequest) -> Any:
        results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
        if not results:
            return [call("pay", {"amount": 5}), call("pay", {"amount": 5})]
        seen.append(" ".join(m.content for m in results))
        if crash_after_tool[0]:
            raise Crash  # dies after the tool calls finished (and were journaled)
        return {"text": " ".join(m.content for m in results)}

    return responder


def pay_plan() -> Plan:
    return Plan(subtasks=(subtask("p", agent="Payer"),))


async def test_a_finished_side_effect_is_answered_from_the_journal(tmp_path: Path) -> None:
    book, seen, crash = Book(), list[str](), [True]
    orch = Orchestrator([Payer()], models=models(payer_responder(seen, crash_after_tool=crash)))
    with pytest.raises(BaseExceptionGroup):
        await orch.run("pay", plan=pay_plan(), deps=book, compose=False, journal=tmp_path / "r")
    assert len(book.keys) == 2  # two payments made, then the crash
    assert len(set(book.keys)) == 2  # each its own idempotency key
    assert all(k for k in book.keys)

    crash[0] = False
    result = await orch.resume(tmp_path / "r", deps=book, compose=False)

    assert len(book.keys) == 2  # nothing paid again
    assert seen[-1] == seen[0] == "receipt-1 receipt-2"  # the journaled results came back
    assert result.outputs["p"] == Text(text="receipt-1 receipt-2")


async def test_a_side_effect_in_flight_at_the_crash_runs_again_under_the_same_key(
    tmp_path: Path,
) -> None:
    book, seen = Book(), list[str]()
    book.crash_inside = True
    responder = payer_responder(seen, crash_after_tool=[False])
    orch = Orchestrator([Payer()], models=models(responder), limits=Limits(concurrency=1))
    with pytest.raises(BaseExceptionGroup):
        await orch.run("pay", plan=pay_plan(), deps=book, compose=False, journal=tmp_path / "r")
    in_flight = list(book.keys)
    assert in_flight  # at least one payment was under way when the process died

    book.crash_inside = False
    result = await orch.resume(tmp_path / "r", deps=book, compose=False)

    # at least once: what was in flight runs again, with the key it had before
    assert set(in_flight) <= set(book.keys)
    assert len(set(book.keys)) == 2
    assert result.outputs["p"].text.startswith("receipt-")


async def test_a_failed_side_effect_is_not_journaled_and_may_run_again(tmp_path: Path) -> None:
    book, seen, crash = Book(), list[str](), [True]
    book.fail_once = True
    orch = Orchestrator([Payer()], models=models(payer_responder(seen, crash_after_tool=crash)))
    with pytest.raises(BaseExceptionGroup):
        await orch.run("pay", plan=pay_plan(), deps=book, compose=False, journal=tmp_path / "r")
    assert "the payment API said no" in seen[0]
    first_keys = list(book.keys)

    crash[0] = False
    await orch.resume(tmp_path / "r", deps=book, compose=False)

    # the failed call ran again under its key; the one that succeeded did not
    again = book.keys[len(first_keys) :]
    assert len(again) == 1
    assert again[0] in first_keys
    assert "the payment API said no" not in seen[-1]


async def test_two_subtasks_asking_the_same_thing_are_two_side_effects(tmp_path: Path) -> None:
    book, seen = Book(), list[str]()
    responder = payer_responder(seen, crash_after_tool=[False])
    orch = Orchestrator([Payer()], models=models(responder), limits=Limits(concurrency=1))
    one = subtask("p1", agent="Payer")
    twins = Plan(subtasks=(one, one.model_copy(update={"id": "p2"})))  # same agent, words, args
    await orch.run("pay twice", plan=twins, deps=book, compose=False, journal=tmp_path / "r")
    assert len(book.keys) == len(set(book.keys)) == 4  # as many payments as without a journal
    assert seen == ["receipt-1 receipt-2", "receipt-3 receipt-4"]


async def test_without_a_journal_a_side_effecting_tool_gets_no_key() -> None:
    book, seen = Book(), list[str]()
    orch = Orchestrator([Payer()], models=models(payer_responder(seen, crash_after_tool=[False])))
    await orch.run("pay", plan=pay_plan(), deps=book, compose=False)
    assert book.keys == [None, None]


# --- secrets ------------------------------------------------------------------------------

SECRET = "sk-proj-ECHOED-0123456789abcdef"


def echoing_server(status: int) -> httpx2.MockTransport:
    """Answers subtask `fine`; rejects `leak` quoting the bearer token it was sent."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        token = request.headers.get("authorization", "")
        if request.headers.get("x-tiered-subtask") == "leak":
            error = {"message": f"Incorrect API key provided: {token}", "code": "invalid_api_key"}
            return httpx2.Response(status, json={"error": error}, headers={"x-echo": token})
        message = {"role": "assistant", "content": json.dumps({"text": "fine"})}
        body = {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-5.4-nano",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        return httpx2.Response(200, json=body)

    return httpx2.MockTransport(handler)


@pytest.mark.parametrize("status", [401, 500])
async def test_the_key_never_reaches_the_journal_the_report_or_the_events(
    tmp_path: Path, status: int
) -> None:
    events: list[RunEvent] = []
    async with httpx2.AsyncClient(transport=echoing_server(status)) as http:
        ladder = {
            t: OpenAIModel(
                default_catalog().for_tier(t).name,
                api_key=SECRET,
                http_client=http,
                base_url="http://127.0.0.1:9/v1",
            )
            for t in Tier
        }
        orch = Orchestrator([Echo()], models=ladder, limits=Limits(concurrency=1))
        plan = Plan(subtasks=(subtask("fine"), subtask("leak")))
        raised, partial = "", None
        try:
            result = await orch.run(
                "keys", plan=plan, compose=False, journal=tmp_path / "run", on_event=events.append
            )
        except TieredError as exc:  # a rejected key may end the run: its result still counts
            partial = exc.result
            raised = "".join(traceback.format_exception(exc)) + repr(vars(exc))
        if partial is not None:
            result = partial
    assert result.subtasks["fine"].status is SubtaskStatus.SUCCEEDED
    assert result.subtasks["leak"].status is not SubtaskStatus.SUCCEEDED
    journal = b"".join(f.read_bytes() for f in (tmp_path / "run").iterdir())
    assert b"fine" in journal  # the journal was written ...
    assert SECRET.encode() not in journal  # ... and holds no key (nor its WAL)
    assert SECRET[-8:].encode() not in journal
    seen = result.to_json() + result.report() + raised
    seen += "".join(json.dumps(e.to_dict()) for e in events)
    assert "Incorrect API key provided: Bearer [redacted]" in seen
    assert SECRET not in seen


# --- one process per run directory ----------------------------------------------------------

PROBE = """
import fcntl, sys
f = open(sys.argv[1], "a+")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(3)
"""


def locked_elsewhere(run_dir: Path) -> bool:
    """Whether another process would find the run directory taken."""
    probe = subprocess.run([sys.executable, "-c", PROBE, str(run_dir / "journal.lock")])
    return probe.returncode == 3


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX record locks")
def test_a_run_directory_is_held_while_any_journal_of_this_process_has_it(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    first = Journal(run_dir)
    second = Journal(run_dir)  # the same process may open it again (a rerun, a test)
    assert locked_elsewhere(run_dir)
    first.close()
    first.close()  # closing twice is harmless
    assert locked_elsewhere(run_dir)  # the other Journal still holds it
    second.close()
    assert not locked_elsewhere(run_dir)
    third = Journal(run_dir)
    assert locked_elsewhere(run_dir)
    del third  # a journal nobody closed lets go when it is collected
    assert not locked_elsewhere(run_dir)


async def test_a_finished_run_lets_go_of_its_directory(tmp_path: Path) -> None:
    orch = Orchestrator([Echo()], models=models(lambda r: {"text": "x"}))
    await orch.run("done", plan=four(), compose=False, journal=tmp_path / "run")
    await orch.resume(tmp_path / "run", compose=False)
    assert not locked_elsewhere(tmp_path / "run")
    (row,) = list_runs(tmp_path)
    assert row.status == "succeeded"
