"""`evaluate`, `Evaluation`, the eval report and the `tiered eval` / `tiered routing` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tiered import (
    Agent,
    BadModelResponse,
    CalibratedRouter,
    Calibration,
    Case,
    Evaluation,
    Limits,
    ModelRequest,
    RoutingStats,
    Tier,
    UserError,
    default_catalog,
    evaluate,
)
from tiered._cli import main
from tiered.models import Ladder, ScriptedModel


def answer_by_tier(correct: dict[Tier, set[str]]) -> dict[Tier, ScriptedModel]:
    """Models that answer the case input back when it is one they 'know', else 'wrong'."""

    def responder(tier: Tier) -> Any:
        def reply(request: ModelRequest) -> str:
            text = str(request.messages[-1].content)
            if text == "crash":
                raise BadModelResponse("garbled reply", model="scripted")
            return text.upper() if text in correct[tier] else "wrong"

        return reply

    catalog = default_catalog()
    return {
        t: ScriptedModel(responder(t), spec=catalog.for_tier(t))
        for t in (Tier.NANO, Tier.MINI, Tier.FLAGSHIP)
    }


AGENT: Agent[Any] = Agent(name="shout", instructions="Repeat the input in capitals.")
CASES = [Case(input=w, expected=w.upper(), category="easy" if i < 4 else "hard", id=w)
         for i, w in enumerate(["a", "b", "c", "d", "e", "f", "g", "h"])]  # fmt: skip
MODELS = answer_by_tier(
    {
        Tier.NANO: {"a", "b", "c", "d", "e"},
        Tier.MINI: {"a", "b", "c", "d", "e", "f", "g"},
        Tier.FLAGSHIP: set("abcdefgh"),
    }
)


def test_every_case_on_every_tier_with_rates_costs_and_intervals() -> None:
    seen: list[int] = []
    report = anyio.run(
        lambda: evaluate(
            Evaluation(agent=AGENT, cases=CASES),
            models=MODELS,
            tiers=["mini", "nano"],
            limits=Limits(concurrency=3),
            progress=lambda o, done, total: seen.append(done),
        )
    )
    assert seen == list(range(1, 17))
    assert report.tiers == (Tier.NANO, Tier.MINI)
    nano, mini = report.summary()
    assert (nano.successes, mini.successes) == (5, 7)
    assert 0.3 < nano.low < nano.rate < nano.high <= 1
    assert nano.failures == {"wrong": 3}
    assert nano.cost > 0
    assert mini.cost > nano.cost
    assert nano.per_success() == nano.cost / 5
    assert [s.successes for s in report.summary("hard")] == [1, 3]
    table = report.table()
    assert "hard" in table
    assert "95% CI" in table
    assert "wrong 3" in table
    data = report.to_dict()
    assert data["tiers"][0]["success_rate"] == 0.625
    assert len(data["outcomes"]) == 16
    json.dumps(data)


def test_calibration_from_eval_drives_the_router_per_category() -> None:
    report = anyio.run(lambda: evaluate(Evaluation(agent=AGENT, cases=CASES), models=MODELS))
    cal = report.calibration()
    entry = cal.lookup(AGENT, MODELS)
    assert entry is not None
    assert entry.categories["easy"]["nano"].successes == 4
    router = CalibratedRouter(
        cal, min_cases=4, min_success=0.9, category=lambda r: r.subtask.arguments.get("kind")
    )
    from tiered import Ledger, RouteRequest, Subtask

    def route(kind: str) -> Any:
        req = RouteRequest(
            subtask=Subtask(id="s", agent="shout", instructions="x", arguments={"kind": kind}),
            agent=AGENT,
            estimated_input_tokens=10,
            ladder=Ladder(MODELS),
        )
        return anyio.run(lambda: router.route(req, models=MODELS, ledger=Ledger()))

    assert route("easy").tier == Tier.NANO
    hard = route("hard")
    assert hard.tier == Tier.FLAGSHIP
    assert "[hard]" in hard.reason


def test_failures_are_counted_by_kind_and_checks_can_see_the_case() -> None:
    def check(output: str, case: Case) -> bool | str:
        return True if output == case.metadata["want"] else f"wanted {case.metadata['want']}"

    cases = [
        Case(input="a", metadata={"want": "A"}),
        Case(input="b", metadata={"want": "nope"}),
        Case(input="crash", metadata={"want": "X"}),
        Case(input="c", check=lambda out: out == "C"),
        Case(input="d", check=lambda out: bool(1 / 0)),
    ]
    report = anyio.run(
        lambda: evaluate(Evaluation(agent=AGENT, cases=cases, check=check), models=MODELS,
                         tiers=["nano"])
    )  # fmt: skip
    by_id = {o.case_id: o for o in report.outcomes}
    assert by_id["case_0"].succeeded
    assert by_id["case_3"].succeeded
    assert by_id["case_1"].failure == "wrong"
    assert by_id["case_1"].detail == "wanted nope"
    assert by_id["case_2"].failure == "model_error"
    assert by_id["case_2"].detected
    assert by_id["case_4"].failure == "error"
    assert "ZeroDivisionError" in by_id["case_4"].detail


def test_jsonl_cases_and_misuse(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"input": "a", "expected": "A", "category": "x", "note": 1}\n\n')
    cases = Evaluation(agent=AGENT, cases=path).loaded_cases()
    assert cases[0].category == "x"
    assert cases[0].metadata == {"note": 1}
    path.write_text('{"expected": "A"}\n')
    with pytest.raises(UserError, match="'input' key"):
        Evaluation(agent=AGENT, cases=path).loaded_cases()
    with pytest.raises(UserError, match="no expected value"):
        anyio.run(lambda: evaluate(Evaluation(agent=AGENT, cases=[Case(input="a")]),
                                   models=MODELS))  # fmt: skip
    with pytest.raises(UserError, match="no model for tier"):
        anyio.run(lambda: evaluate(Evaluation(agent=AGENT, cases=CASES), models={},
                                   tiers=["nano"]))  # fmt: skip


EVAL_FILE = """
from tests.test_eval import AGENT, CASES, MODELS
from tiered import Evaluation
evaluation = Evaluation(agent=AGENT, cases=CASES, models=MODELS)
"""


def test_cli_eval_writes_calibration_and_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    file = tmp_path / "ev.py"
    file.write_text(EVAL_FILE)
    cal = tmp_path / "cal.json"
    assert main(["eval", str(file), "--tiers", "nano,mini", "--calibration", str(cal)]) == 0
    out, err = capsys.readouterr()
    assert "[16/16]" in err
    assert "calibration written" in err
    assert out.splitlines()[0].startswith("scope")
    # what the calibration means for routing: nano is 62% (5 of 8), mini 88% here
    assert "Where CalibratedRouter starts this agent" in out
    assert "  all: fewer than 10 cases on two tiers" in out  # 8 cases: the rules decide
    assert Calibration.load(cal).lookup(AGENT, {t: MODELS[t] for t in (Tier.NANO, Tier.MINI)})
    assert main(["eval", str(file), "--json", "--quiet", "--calibration", "none"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["tiers"][2]["successes"] == 8
    assert err == ""
    assert main(["eval", str(tmp_path / "missing.py")]) == 2


def test_cli_routing_shows_the_learned_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = RoutingStats(half_life=1e9)  # no forgetting: (2 + 1) / (3 + 2) = 60%
    for ok in (True, True, False):
        stats.record("shout", Tier.NANO, ok, category="easy")
    path = tmp_path / "routing-stats.json"
    stats.save(path)
    assert main(["routing", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert rows[0][:4] == ["shout", "nano", "-", "60%"]
    assert rows[1][:4] == ["shout", "nano", "easy", "60%"]
    assert main(["routing", str(tmp_path / "none.json")]) == 2


def test_deadline_reports_what_finished() -> None:
    async def slow(request: ModelRequest) -> str:
        text = str(request.messages[-1].content)
        if text != "a":
            await anyio.sleep(5)
        return text.upper()

    models = {Tier.NANO: ScriptedModel(slow, spec=default_catalog().for_tier(Tier.NANO))}
    report = anyio.run(
        lambda: evaluate(
            Evaluation(agent=AGENT, cases=CASES[:3]), models=models, limits=Limits(deadline=0.5)
        )
    )
    assert [(o.case_id, o.succeeded) for o in report.outcomes] == [("a", True)]
