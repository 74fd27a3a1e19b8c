"""What the orchestrator promises, each tried: the lazy scheduler, misuse failing fast,
money summed from the ledger's own charges, limits checked up front, skipped events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from orchestration_support import Echo, Text, ladder, subtask
from tiered import (
    Agent,
    AssistantMessage,
    Limits,
    ModelRequest,
    ModelResponse,
    Orchestrator,
    Plan,
    RunEvent,
    RunStatus,
    ScriptedModel,
    SubtaskSkipped,
    SubtaskStatus,
    Tier,
    Usage,
    UserError,
    default_catalog,
)
from tiered.models import Ladder, ScriptStep

pytestmark = pytest.mark.anyio


async def test_a_subtask_starts_only_when_a_slot_is_free_and_its_dependencies_are_done() -> None:
    live = 0
    peak = 0
    order: list[str] = []

    async def responder(request: ModelRequest) -> ScriptStep:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        order.append(request.metadata["subtask_id"])
        await anyio.sleep(0.002)
        live -= 1
        return {"text": "ok"}

    started_minus_ended: list[int] = []
    running: set[str] = set()

    def on_event(event: Any) -> None:
        if event.name == "subtask.started":
            running.add(event.subtask_id)
            started_minus_ended.append(len(running))
        elif event.name in ("subtask.finished", "subtask.failed"):
            running.discard(event.subtask_id)

    chain = [subtask("c0"), *(subtask(f"c{i}", f"c{i - 1}") for i in range(1, 20))]
    wide = [subtask(f"w{i}") for i in range(60)]
    join = subtask("join", "c19", *(f"w{i}" for i in range(60)))
    orch = Orchestrator([Echo()], models=ladder(responder), limits=Limits(concurrency=4))
    result = await orch.run(
        "go", plan=Plan(subtasks=(*chain, *wide, join)), compose=False, on_event=on_event
    )
    assert result.status is RunStatus.SUCCEEDED
    assert peak <= 4
    assert max(started_minus_ended) <= 4
    assert [o for o in order if o.startswith("c")] == [f"c{i}" for i in range(20)]
    assert order[-1] == "join"


async def test_a_2000_subtask_dependency_chain_runs_without_recursion() -> None:
    plan = Plan(subtasks=(subtask("s0"), *(subtask(f"s{i}", f"s{i - 1}") for i in range(1, 2000))))
    result = await Orchestrator([Echo()], models=ladder(lambda r: {"text": "ok"})).run(
        "long", plan=plan, compose=False
    )
    assert result.status is RunStatus.SUCCEEDED
    assert len(result.outputs) == 2000


class Checked(Agent[Text]):
    """Echo whose output a verifier checks."""

    input_type = Text
    output_type = Text


async def test_a_bug_in_a_verifier_ends_the_run_instead_of_being_escalated() -> None:
    models = ladder(lambda r: {"text": "ok"})

    def broken(subtask: Any, output: Any) -> str | None:
        raise TypeError("verifier expected a dict")

    orch = Orchestrator([Checked()], models=models, verify={"Checked": broken})
    plan = Plan(subtasks=(subtask("a", agent="Checked"),))
    with pytest.raises(TypeError, match="verifier expected a dict"):
        await orch.run("go", plan=plan, compose=False)
    calls = sum(len(m.requests) for m in models.values() if isinstance(m, ScriptedModel))
    assert calls == 1  # paid once, not on mini, flagship and a decomposition too


async def test_a_user_error_raised_in_user_code_ends_the_run_with_the_result_so_far() -> None:
    class Picky(Agent[Text]):
        """Raises a UserError from its output validator."""

        input_type = Text
        output_type = Text

        async def validate_output(self, output: Text, ctx: Any) -> Text:
            raise UserError("Picky is misconfigured: set `threshold`")

    models = ladder(lambda r: {"text": "ok"})
    plan = Plan(subtasks=(subtask("a", agent="Echo"), subtask("b", "a", agent="Picky")))
    with pytest.raises(UserError, match="misconfigured") as caught:
        await Orchestrator([Echo(), Picky()], models=models).run("go", plan=plan, compose=False)
    partial = caught.value.result
    assert partial.status is RunStatus.FAILED
    assert partial.subtasks["a"].status is SubtaskStatus.SUCCEEDED
    assert len(partial.subtasks["b"].attempts) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"concurrency": 0}, "concurrency=0"),
        ({"concurrency": -3}, "concurrency=-3"),
        ({"subtask_timeout": 0}, "subtask_timeout=0"),
        ({"deadline": -1.0}, "deadline=-1.0"),
        ({"per_model": {"gpt-5.4-nano": 0}}, "per_model"),
        ({"max_decompose_depth": -1}, "max_decompose_depth"),
    ],
)
def test_limits_check_their_values_when_made(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        Limits(**fields)


async def test_a_tier_the_ladder_lacks_is_a_user_error_before_any_call() -> None:
    cat = default_catalog()
    nano = ScriptedModel(lambda r: {"text": "ok"}, spec=cat.for_tier(Tier.NANO))

    class NeedsMini(Agent[Text]):
        """Defaults to mini."""

        tier = Tier.MINI
        input_type = Text
        output_type = Text

    orch = Orchestrator([NeedsMini()], models={Tier.NANO: nano})
    with pytest.raises(UserError, match="'mini' is not on this ladder"):
        await orch.run("go", plan=Plan(subtasks=(subtask("a", agent="NeedsMini"),)))
    assert nano.requests == []


async def test_a_two_rung_ladder_escalates_and_plans_on_its_top() -> None:
    cat = default_catalog()
    seen: list[str] = []

    def responder(request: ModelRequest) -> ScriptStep:
        seen.append(request.metadata["agent"])
        return "the answer" if request.metadata["agent"] == "planner.compose" else {"text": "ok"}

    two = Ladder(
        [(t, ScriptedModel(responder, spec=cat.for_tier(t))) for t in (Tier.NANO, Tier.MINI)]
    )
    rejected = iter([True, False])
    orch = Orchestrator(
        [Echo()],
        models=two,
        verify={"Echo": lambda s, o: "wrong" if next(rejected) else None},
    )
    result = await orch.run("go", plan=Plan(subtasks=(subtask("a"),)))
    assert result.status is RunStatus.SUCCEEDED
    assert result.subtasks["a"].tier_path == [Tier.NANO, Tier.MINI]
    assert result.planner_attempts[0].tier is Tier.MINI  # composed on the top rung


def _long_context_call(tokens: int) -> ModelResponse:
    return ModelResponse(
        message=AssistantMessage(content='{"text": "ok"}'),
        usage=Usage(input_tokens=tokens, output_tokens=100, requests=1),
        model_name="gpt-5.4",
    )


async def test_attempt_subtask_tier_and_run_totals_are_sums_of_the_same_charges() -> None:
    cat = default_catalog()
    replies = iter([_long_context_call(150_000), _long_context_call(150_000)])

    def responder(request: ModelRequest) -> ScriptStep:
        if request.metadata["agent"] == "planner.compose":
            return _long_context_call(300_000)  # over the 272K break: long-context rates
        return next(replies)

    class Retried(Agent[Text]):
        """Asks for a repair once, so one attempt makes two 150K-token calls."""

        tier = Tier.FLAGSHIP
        input_type = Text
        output_type = Text
        checked = False

        async def validate_output(self, output: Text, ctx: Any) -> Text:
            from tiered import ModelRetry

            if not self.checked:
                self.checked = True
                raise ModelRetry("again")
            return output

    models = {t: ScriptedModel(responder, spec=cat.for_tier(t)) for t in Tier}
    result = await Orchestrator([Retried()], models=models).run(
        "go", plan=Plan(subtasks=(subtask("a", agent="Retried"),))
    )
    attempt = result.subtasks["a"].attempts[0]
    flagship = cat.for_tier(Tier.FLAGSHIP)
    per_call = flagship.cost(Usage(input_tokens=150_000, output_tokens=100, requests=1))
    assert len(attempt.charges) == 2
    assert attempt.cost == 2 * per_call  # not the long-context rate applied to a 300K sum
    assert attempt.cost == sum((c.cost for c in attempt.charges), Decimal(0))
    every = [*result.subtasks["a"].attempts, *result.planner_attempts]
    assert sum((a.cost for a in every), Decimal(0)) == result.cost
    assert result.by_tier[Tier.FLAGSHIP].cost == result.cost
    composed = result.planner_attempts[-1]
    assert composed.cost == flagship.cost(Usage(input_tokens=300_000, output_tokens=100))
    assert composed.cost > 2 * per_call


async def test_subtasks_cut_off_by_the_deadline_each_get_a_skipped_event() -> None:
    async def slow(request: ModelRequest) -> ScriptStep:
        await anyio.sleep(5)
        return {"text": "late"}

    skipped: list[str] = []

    def on_event(event: RunEvent) -> None:
        if isinstance(event, SubtaskSkipped):
            skipped.append(event.subtask_id)

    orch = Orchestrator([Echo()], models=ladder(slow), limits=Limits(concurrency=2, deadline=0.2))
    plan = Plan(subtasks=tuple(subtask(f"s{i}") for i in range(6)))
    result = await orch.run(
        "go",
        plan=plan,
        compose=False,
        on_event=on_event,
    )
    assert result.status is RunStatus.DEADLINE
    assert sorted(skipped) == [f"s{i}" for i in range(6)]
    assert all(r.status is SubtaskStatus.SKIPPED for r in result.subtasks.values())


def test_the_cli_refuses_a_concurrency_of_zero_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tiered._cli import main

    code = main(["run", "examples/triage.py", "--concurrency", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert "concurrency" in err[0]
    assert "Traceback" not in err[0]


def test_run_sync_works_for_scripts_and_inside_a_running_loop() -> None:
    orch = Orchestrator([Echo()], models=ladder(lambda r: {"text": "ok"}))
    plan = Plan(subtasks=(subtask("a"),))
    assert orch.run_sync("go", plan=plan, compose=False).status is RunStatus.SUCCEEDED
    out = Echo().run_sync(Text(text="x"), model=ScriptedModel([{"text": "X"}]))
    assert out.output == Text(text="X")

    async def inside() -> RunStatus:
        return orch.run_sync("go", plan=plan, compose=False).status  # a notebook cell

    assert anyio.run(inside) is RunStatus.SUCCEEDED
