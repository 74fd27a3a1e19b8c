"""Gain-aware escalation as the orchestrator's default, and learning from every attempt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestration_support import Echo, Text, ladder, last_user, subtask, tier_of
from tiered import (
    DefaultPolicy,
    Evidence,
    ModelRequest,
    Orchestrator,
    Plan,
    RoutingStats,
    RunEvent,
    Subtask,
    SubtaskEscalated,
    SubtaskStatus,
    Tier,
    gain_aware_policy,
)
from tiered._gain import evidence_for
from tiered.models import Model, ScriptedModel, ScriptStep

pytestmark = pytest.mark.anyio


def tier_named_ladder() -> dict[Tier, Model]:
    """Every tier answers with its own name, so a check can tell them apart."""
    models: dict[Tier, Model] = {}

    def responder(request: ModelRequest) -> ScriptStep:
        return {"text": tier_of(request, models).value}

    models.update(ladder(responder))
    return models


def only_mini(task: Subtask, output: Text) -> str | None:
    return None if output.text == "mini" else f"{output.text} is not good enough"


def seen(
    stats: RoutingStats, tier: Tier, success: float, n: int, *, after: Tier | None = None
) -> None:
    for i in range(n):  # successes spread evenly, so forgetting does not tilt the rate
        stats.record("Echo", tier, int((i + 1) * success) > int(i * success), after=after)


async def run_one(orch: Orchestrator) -> tuple[list[str], list[str], str]:
    result = await orch.run("check", plan=Plan(subtasks=(subtask("v"),)), compose=False)
    record = result.subtasks["v"]
    return (
        [a.tier.value for a in record.attempts],
        [a.reason for a in record.attempts],
        record.status.value,
    )


async def test_no_evidence_escalates_as_before_and_learns_the_rescue() -> None:
    stats = RoutingStats()
    models = tier_named_ladder()
    orch = Orchestrator([Echo()], models=models, verify={"Echo": only_mini}, stats=stats)
    tiers, reasons, status = await run_one(orch)
    assert (tiers, status) == (["nano", "mini"], "succeeded")
    assert "no calibration for nano->mini: escalate as usual" not in reasons[1]  # no rule matched
    assert "move one tier up" in reasons[1]
    # the first try counts for nano; mini's success counts as a rescue of nano's failure
    assert stats.estimate("Echo", Tier.NANO).n == 1
    assert stats.estimate("Echo", Tier.MINI).n == 0
    rescue = stats.estimate("Echo", Tier.MINI, after=Tier.NANO)
    assert rescue.n == 1
    assert rescue.mean > 0.5


async def test_no_stats_at_all_is_the_plain_default_policy() -> None:
    orch = Orchestrator([Echo()], models=tier_named_ladder(), verify={"Echo": only_mini})
    assert isinstance(orch.config.policy, DefaultPolicy)
    assert [r.name for r in orch.config.policy.rules] == [
        r.name for r in DefaultPolicy.default_rules()
    ]
    tiers, _, status = await run_one(orch)
    assert (tiers, status) == (["nano", "mini"], "succeeded")


async def test_mini_no_better_than_nano_retries_with_feedback_then_gives_up() -> None:
    stats = RoutingStats()
    seen(stats, Tier.NANO, 0.5, 40)
    seen(stats, Tier.MINI, 0.5, 40)
    models = tier_named_ladder()
    policy = gain_aware_policy(Evidence(stats=stats), value_factor=None)  # the margin rule
    orch = Orchestrator(
        [Echo()], models=models, verify={"Echo": only_mini}, stats=stats, policy=policy
    )
    tiers, reasons, status = await run_one(orch)
    assert (tiers, status) == (["nano", "nano"], "failed")
    assert re.search(r"mini \d+% vs nano \d+% for Echo", reasons[1])
    assert "escalating buys nothing" in reasons[1]
    assert "retry on this tier with the failure as feedback" in reasons[1]
    nano = models[Tier.NANO]
    assert isinstance(nano, ScriptedModel)
    assert "nano is not good enough" in last_user(nano.requests[1])  # the feedback
    assert "nano is not good enough" not in last_user(nano.requests[0])
    assert models[Tier.MINI].requests == []  # type: ignore[attr-defined]
    # the first try is a fair sample of nano; the retry after its failure is kept apart
    assert stats.estimate("Echo", Tier.NANO).n == 41
    assert stats.estimate("Echo", Tier.NANO, after=Tier.NANO).n == 1


async def test_the_default_escalates_to_learn_a_rescue_the_rates_cannot_show() -> None:
    stats = RoutingStats()
    seen(stats, Tier.NANO, 0.5, 40)
    seen(stats, Tier.MINI, 0.5, 40)  # no better on its own traffic, and no rescues seen yet
    orch = Orchestrator(
        [Echo()], models=tier_named_ladder(), verify={"Echo": only_mini}, stats=stats
    )
    tiers, reasons, status = await run_one(orch)
    assert (tiers, status) == (["nano", "mini"], "succeeded")
    assert "mini has rescued 0 of 10 nano failures for Echo" in reasons[1]
    assert stats.estimate("Echo", Tier.MINI, after=Tier.NANO).n == 1


async def test_learned_rescues_decide_and_a_useless_retry_is_skipped() -> None:
    stats = RoutingStats()
    seen(stats, Tier.NANO, 0.5, 40)
    seen(stats, Tier.MINI, 0.9, 40)  # mini looks better on its own traffic...
    seen(stats, Tier.MINI, 0.0, 12, after=Tier.NANO)  # ...but never rescues nano's failures
    seen(stats, Tier.NANO, 0.0, 12, after=Tier.NANO)  # and retries on nano never help
    orch = Orchestrator(
        [Echo()], models=tier_named_ladder(), verify={"Echo": only_mini}, stats=stats
    )
    events: list[RunEvent] = []
    result = await orch.run(
        "check", plan=Plan(subtasks=(subtask("v"),)), compose=False, on_event=events.append
    )
    assert [a.tier for a in result.subtasks["v"].attempts] == [Tier.NANO]
    assert result.subtasks["v"].status is SubtaskStatus.FAILED
    (decision,) = [e for e in events if isinstance(e, SubtaskEscalated)]
    assert decision.action == "give_up"
    assert "mini got right 8% of what nano got wrong for Echo (12 escalations)" in decision.reason
    assert "under 10%, escalating buys nothing; give up" in decision.reason


async def test_evidence_where_mini_is_better_still_escalates() -> None:
    stats = RoutingStats()
    seen(stats, Tier.NANO, 0.3, 40)
    seen(stats, Tier.MINI, 0.9, 40)
    orch = Orchestrator(
        [Echo()], models=tier_named_ladder(), verify={"Echo": only_mini}, stats=stats
    )
    tiers, reasons, status = await run_one(orch)
    assert (tiers, status) == (["nano", "mini"], "succeeded")
    assert "move one tier up" in reasons[1]


async def test_an_explicit_policy_is_left_alone() -> None:
    stats = RoutingStats()
    seen(stats, Tier.NANO, 0.5, 40)
    seen(stats, Tier.MINI, 0.5, 40)
    orch = Orchestrator(
        [Echo()],
        models=tier_named_ladder(),
        verify={"Echo": only_mini},
        stats=stats,
        policy=DefaultPolicy(),
    )
    tiers, _, status = await run_one(orch)
    assert (tiers, status) == (["nano", "mini"], "succeeded")


def test_evidence_comes_from_stats_or_a_calibrated_router() -> None:
    from tiered import CalibratedRouter, RuleRouter

    stats = RoutingStats()
    assert evidence_for(RuleRouter(), None) is None
    assert evidence_for(None, object()) is None  # stats that cannot be read: no evidence
    learned = evidence_for(None, stats)
    assert learned is not None
    assert learned.stats is stats
    router = CalibratedRouter(Evidence())
    assert evidence_for(router, None) is router.evidence
    pooled = evidence_for(router, stats)
    assert pooled is not None
    assert pooled.stats is stats
    policy = gain_aware_policy(learned, max_attempts=3)
    assert policy.max_attempts == 3
    names = [r.name for r in policy.rules]
    assert names.index("gain_retry") < names.index("gain_give_up") < names.index("escalate")


async def test_stats_file_round_trip_keeps_the_rescue_cells(tmp_path: Path) -> None:
    stats = RoutingStats()
    seen(stats, Tier.MINI, 0.25, 12, after=Tier.NANO)
    path = tmp_path / "routing-stats.json"
    stats.save(path)
    loaded = RoutingStats.load(path)
    assert loaded.estimate("Echo", Tier.MINI, after=Tier.NANO).n == 12
    assert loaded.estimate("Echo", Tier.MINI).n == 0
    assert [c for _, _, c, _ in loaded.rows()] == ["after:nano"]


def test_autosaved_stats_are_on_disk_after_every_attempt(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "routing-stats.json"
    stats = RoutingStats.load(path, autosave=True)  # the first run: no file yet
    assert not path.exists()
    stats.record("Echo", Tier.NANO, False)
    assert RoutingStats.load(path).estimate("Echo", Tier.NANO).n == 1
    stats.record("Echo", Tier.MINI, True, after=Tier.NANO)
    again = RoutingStats.load(path)
    assert again.estimate("Echo", Tier.MINI, after=Tier.NANO).n == 1
    assert again.autosave is None  # only the loader that asked for it writes
