"""Prices for self-hosted models: `NAME@gpt-5.4-nano`, and "no price known" instead of $0."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from pydantic import BaseModel

from tiered import (
    Agent,
    Budget,
    Ledger,
    ModelRequest,
    Orchestrator,
    Plan,
    ScriptedModel,
    Subtask,
    Tier,
    Usage,
    UserError,
    default_catalog,
)
from tiered._catalog import FREE, UNPRICED, self_hosted_spec
from tiered._cli import main
from tiered._ledger import TierTotals
from tiered._result import RunResult, RunStatus
from tiered.models import models_from_env, parse_model_map
from tiered.models._select import split_equivalent

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "triage.py"
USAGE = Usage(input_tokens=1_000, output_tokens=500, requests=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("qwen2.5:0.5b", ("qwen2.5:0.5b", None)),  # an Ollama tag is part of the name
        ("qwen2.5:0.5b@gpt-5.4-nano", ("qwen2.5:0.5b", "gpt-5.4-nano")),
        ("qwen2.5:gpt-5.4-nano", ("qwen2.5", "gpt-5.4-nano")),
        ("llama3:70b:gpt-5.4", ("llama3:70b", "gpt-5.4")),
        ("Qwen/Qwen2.5-7B-Instruct@gpt-5.4-mini", ("Qwen/Qwen2.5-7B-Instruct", "gpt-5.4-mini")),
        ("claude-3@20240229", ("claude-3@20240229", None)),  # '@' in a name, not a price
        ("gpt-5.4-nano", ("gpt-5.4-nano", None)),  # a catalog model prices itself
    ],
)
def test_a_name_can_say_which_openai_model_it_stands_in_for(
    text: str, expected: tuple[str, str | None]
) -> None:
    assert split_equivalent(text) == expected


def test_a_mistyped_equivalent_is_refused_with_the_known_names() -> None:
    with pytest.raises(UserError, match=r"'gpt-5.4-nan'.*gpt-5.4-nano, gpt-5.4-mini, gpt-5.4"):
        split_equivalent("qwen@gpt-5.4-nan")


def test_the_ladder_from_a_model_map_is_metered_at_the_named_prices() -> None:
    names = parse_model_map("nano=qwen2.5:0.5b@gpt-5.4-nano,mini=qwen2.5:gpt-5.4-mini,flagship=big")
    ladder = models_from_env({}, base_url="http://127.0.0.1:9/v1", model_map=names)
    assert ladder.source.endswith(
        "(nano=qwen2.5:0.5b at gpt-5.4-nano prices, mini=qwen2.5 at gpt-5.4-mini prices, "
        "flagship=big (no price known))"
    )
    nano, mini, top = (ladder[t].spec for t in (Tier.NANO, Tier.MINI, Tier.FLAGSHIP))
    assert (nano.name, nano.tier, nano.equivalent) == ("qwen2.5:0.5b", Tier.NANO, "gpt-5.4-nano")
    assert (mini.name, mini.equivalent) == ("qwen2.5", "gpt-5.4-mini")
    assert (top.name, top.pricing, top.equivalent) == ("big", UNPRICED, None)
    ledger = Ledger()
    assert ledger.quote(nano, USAGE) == (D(0), default_catalog()["gpt-5.4-nano"].cost(USAGE))
    assert ledger.priced(nano)
    assert not ledger.priced(top)


def test_an_unpriced_call_is_booked_as_unknown_not_free() -> None:
    ledger = Ledger()
    charge = ledger.record(self_hosted_spec("big", Tier.MINI), USAGE)
    priced = ledger.record(self_hosted_spec("q", Tier.MINI, equivalent="gpt-5.4-mini"), USAGE)
    assert (charge.cost, charge.equivalent_cost, charge.priced) == (D(0), D(0), False)
    assert priced.priced
    assert priced.equivalent_cost == D("0.003")
    assert ledger.unpriced_requests == 1
    assert ledger.by_tier()[Tier.MINI].unpriced_requests == 1
    assert ledger.flagship_priced


def test_unpriced_is_not_free() -> None:
    assert UNPRICED != FREE
    assert not self_hosted_spec("big", Tier.NANO).priced
    assert self_hosted_spec("q", Tier.NANO, equivalent="gpt-5.4-nano").pricing == FREE
    assert default_catalog()["gpt-5.4"].priced  # genai-prices knows it


def test_an_unknown_equivalent_is_refused_where_the_spec_is_made() -> None:
    with pytest.raises(UserError, match="gpt-4o"):
        self_hosted_spec("q", Tier.NANO, equivalent="gpt-4o")


def test_a_dollar_budget_over_unpriced_models_is_refused_up_front() -> None:
    unpriced = self_hosted_spec("big", Tier.FLAGSHIP)
    priced = self_hosted_spec("q", Tier.NANO, equivalent="gpt-5.4-nano")
    Ledger().require_prices([unpriced])  # no dollar budget: nothing to refuse
    Ledger(Budget(tokens=10)).require_prices([unpriced])
    Ledger(Budget(usd=D(1))).require_prices([priced])
    with pytest.raises(UserError, match=r"none is known for big: .*@gpt-5.4-nano"):
        Ledger(Budget(usd=D(1))).require_prices([priced, unpriced])
    with pytest.raises(UserError, match="none is known for big"):
        Ledger(Budget(usd=D(1)), flagship=unpriced)


async def test_an_agent_with_a_dollar_budget_refuses_an_unpriced_model_before_calling_it() -> None:
    model = ScriptedModel(["never sent"], spec=self_hosted_spec("big", Tier.NANO))
    with pytest.raises(UserError, match="a dollar budget needs a price"):
        await Agent(name="a").run("go", model=model, ledger=Ledger(Budget(usd=D(1))))
    assert model.requests == []


class Text(BaseModel):
    text: str


class Echo(Agent[Text]):
    """Echoes."""

    instructions = "Echo."
    input_type = Text
    output_type = Text


def _echo(request: ModelRequest) -> dict[str, str]:
    return {"text": "X"}


async def _run(equivalent: bool) -> str:
    cat = default_catalog()
    models = {
        t: ScriptedModel(
            _echo,
            spec=self_hosted_spec(
                f"self-{t.value}", t, equivalent=cat.for_tier(t).name if equivalent else None
            ),
        )
        for t in Tier
    }
    plan = Plan(
        subtasks=(Subtask(id="one", agent="Echo", instructions="echo", arguments={"text": "x"}),)
    )
    result = await Orchestrator([Echo()], models=models).run("echo", plan=plan, compose=False)
    assert result.usage.requests == 1
    if equivalent:
        assert result.equivalent_cost == cat["gpt-5.4-nano"].cost(result.usage) > 0
        assert result.counterfactual_cost == cat["gpt-5.4"].cost(result.usage) > 0
    else:
        assert result.by_tier[Tier.NANO].unpriced_requests == 1
    return result.report()


async def test_the_report_says_no_price_known_instead_of_zero_dollars() -> None:
    report = await _run(equivalent=False)
    assert "total: no price known for any of the 1 calls; all-flagship: no price known" in report
    assert "savings unknown" in report
    assert "NAME@gpt-5.4-nano" in report
    tier_row = next(line for line in report.splitlines() if line.startswith("nano "))
    assert "no price known" in tier_row
    assert "$0" not in tier_row
    subtask_row = next(line for line in report.splitlines() if line.startswith("one "))
    assert subtask_row.rstrip().endswith("no price known")


async def test_the_report_uses_the_equivalent_prices_of_a_priced_self_hosted_model() -> None:
    report = await _run(equivalent=True)
    assert "no price known" not in report
    assert "% saved" in report


def test_models_command_shows_how_a_model_map_is_priced(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERED_MODELS", "nano=qwen2.5:0.5b@gpt-5.4-nano,mini=m,flagship=gpt-5.4")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[-3:]}
    assert "qwen2.5:0.5b" in rows["nano"]
    assert "gpt-5.4-nano: $0.20 / $0.02 / $1.25 per 1M" in rows["nano"]
    assert "no price known: write m@gpt-5.4-mini to price it" in rows["mini"]
    assert "catalog prices" in rows["flagship"]
    assert main(["models", "--models", "nano=q@gpt-5.4-nan"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "'gpt-5.4-nan'" in captured.err


def test_run_with_a_dollar_budget_over_unpriced_models_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["run", str(EXAMPLE), "--base-url", "http://127.0.0.1:9/v1", "--budget", "0.50"]
    code = main([*argv, "--models", "nano=a,mini=b,flagship=c"])
    err = capsys.readouterr().err
    assert code != 0
    last = err.strip().splitlines()[-1]
    assert "a dollar budget needs a price for every model" in last
    assert "Traceback" not in err


def test_the_report_totals_say_which_part_is_priced() -> None:
    nano = TierTotals(
        usage=Usage(input_tokens=10, output_tokens=5, requests=1), unpriced_requests=1
    )
    mini = TierTotals(
        usage=Usage(input_tokens=10, output_tokens=5, requests=2),
        cost=D("0.01"),
        equivalent_cost=D("0.01"),
    )
    result = RunResult(
        run_id="r",
        goal="g",
        status=RunStatus.SUCCEEDED,
        plan=None,
        subtasks={},
        usage=nano.usage + mini.usage,
        cost=D("0.01"),
        equivalent_cost=D("0.01"),
        counterfactual_cost=D("0.05"),
        by_tier={Tier.NANO: nano, Tier.MINI: mini},
    )
    total = result.report().splitlines()[-1]
    assert total.startswith(
        "total: no price known for 1 of 3 calls, $0.01 at OpenAI prices for the other 2; "
        "all-flagship: $0.05; savings unknown."
    )
