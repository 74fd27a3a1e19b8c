"""The price table, tier ladder, usage arithmetic and the ledger, to the exact Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tiered import (
    FREE,
    Budget,
    BudgetExceeded,
    Catalog,
    Ledger,
    ModelSpec,
    PriceBreak,
    Pricing,
    Tier,
    UnknownModel,
    Usage,
    UserError,
    default_catalog,
)

D = Decimal


def usage(inp: int = 0, out: int = 0, cached: int = 0, requests: int = 0) -> Usage:
    return Usage(input_tokens=inp, output_tokens=out, cached_input_tokens=cached, requests=requests)


@pytest.fixture
def catalog() -> Catalog:
    return default_catalog()


# --- the published figures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "tier", "inp", "cached", "out", "context", "max_out"),
    [
        ("gpt-5.4", Tier.FLAGSHIP, "2.50", "0.25", "15.00", 1_050_000, 128_000),
        ("gpt-5.4-mini", Tier.MINI, "0.75", "0.075", "4.50", 400_000, 128_000),
        ("gpt-5.4-nano", Tier.NANO, "0.20", "0.02", "1.25", 400_000, 128_000),
    ],
)
def test_published_price_table(
    catalog: Catalog,
    model: str,
    tier: Tier,
    inp: str,
    cached: str,
    out: str,
    context: int,
    max_out: int,
) -> None:
    spec = catalog[model]
    prices = spec.prices()
    assert spec.tier is tier
    assert (prices.input, prices.cached_input, prices.output) == (D(inp), D(cached), D(out))
    assert (spec.context_window, spec.max_output_tokens) == (context, max_out)


def test_default_catalog_ladder(catalog: Catalog) -> None:
    assert list(catalog) == ["gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4"]
    assert len(catalog) == 3
    assert {t: catalog.for_tier(t).name for t in Tier} == {
        Tier.NANO: "gpt-5.4-nano",
        Tier.MINI: "gpt-5.4-mini",
        Tier.FLAGSHIP: "gpt-5.4",
    }


@pytest.mark.parametrize(
    ("model", "inp", "out", "expected"),
    [
        ("gpt-5.4-mini", 1_000, 500, "0.003"),
        ("gpt-5.4-nano", 1_000, 500, "0.000825"),
        ("gpt-5.4-nano", 200, 30, "0.0000775"),
    ],
)
def test_worked_examples_exact(
    catalog: Catalog, model: str, inp: int, out: int, expected: str
) -> None:
    cost = catalog[model].cost(usage(inp, out))
    assert isinstance(cost, Decimal)
    assert cost == D(expected)
    assert f"{cost.normalize():f}" == expected


def test_cached_tokens_pay_the_cached_price(catalog: Catalog) -> None:
    cost = catalog["gpt-5.4-mini"].cost(usage(1_000, 500, cached=400))
    expected = (600 * D("0.75") + 400 * D("0.075") + 500 * D("4.50")) / 1_000_000
    assert cost == expected == D("0.00273")


def test_all_cached_input(catalog: Catalog) -> None:
    assert catalog["gpt-5.4-nano"].cost(usage(1_000_000, 0, cached=1_000_000)) == D("0.02")


def test_batch_halves(catalog: Catalog) -> None:
    assert catalog["gpt-5.4-mini"].cost(usage(1_000, 500), batch=True) == D("0.0015")


def test_regional_adds_ten_percent(catalog: Catalog) -> None:
    assert catalog["gpt-5.4-mini"].cost(usage(1_000, 500), regional=True) == D("0.0033")


def test_batch_and_regional_together(catalog: Catalog) -> None:
    assert catalog["gpt-5.4-nano"].cost(usage(1_000, 500), batch=True, regional=True) == D(
        "0.00045375"
    )


def test_zero_usage_costs_nothing(catalog: Catalog) -> None:
    assert catalog["gpt-5.4"].cost(Usage()) == 0


# --- long context -----------------------------------------------------------------------


def test_flagship_long_context_break(catalog: Catalog) -> None:
    assert catalog["gpt-5.4"].prices().breaks == (
        PriceBreak(input_tokens=272_000, input=D("5"), cached_input=D("0.5"), output=D("22.5")),
    )


def test_at_the_threshold_the_base_rate_applies(catalog: Catalog) -> None:
    cost = catalog["gpt-5.4"].cost(usage(272_000, 1_000))
    assert cost == (272_000 * D("2.50") + 1_000 * D("15.00")) / 1_000_000 == D("0.695")


def test_above_the_threshold_every_token_pays_the_long_rate(catalog: Catalog) -> None:
    cost = catalog["gpt-5.4"].cost(usage(272_001, 1_000, cached=100_000))
    expected = (172_001 * D("5") + 100_000 * D("0.50") + 1_000 * D("22.50")) / 1_000_000
    assert cost == expected == D("0.932505")


def test_cheap_tiers_have_no_break_up_to_their_window(catalog: Catalog) -> None:
    for name in ("gpt-5.4-nano", "gpt-5.4-mini"):
        assert catalog[name].prices().breaks == ()
    assert catalog["gpt-5.4-nano"].cost(usage(300_000)) == D("0.06")


def test_custom_breaks_pick_the_highest_crossed() -> None:
    pricing = Pricing(
        input=D(1),
        cached_input=D(1),
        output=D(1),
        breaks=(
            PriceBreak(input_tokens=10, input=D(2), cached_input=D(2), output=D(2)),
            PriceBreak(input_tokens=100, input=D(3), cached_input=D(3), output=D(3)),
        ),
    )
    assert pricing.cost(usage(10, 0)) == D(10) / 1_000_000
    assert pricing.cost(usage(11, 0)) == D(22) / 1_000_000
    assert pricing.cost(usage(101, 0)) == D(303) / 1_000_000


# --- registering models -----------------------------------------------------------------


def test_register_local_model_at_zero(catalog: Catalog) -> None:
    local = catalog.register(
        ModelSpec(
            name="qwen-local",
            tier=Tier.NANO,
            context_window=32_768,
            max_output_tokens=8_192,
            pricing=FREE,
            equivalent="gpt-5.4-nano",
        )
    )
    assert catalog["qwen-local"] is local
    assert local.cost(usage(1_000_000, 1_000_000)) == 0
    # registering does not displace the tier's existing default
    assert catalog.for_tier(Tier.NANO).name == "gpt-5.4-nano"


def test_register_vllm_model_with_its_own_prices(catalog: Catalog) -> None:
    spec = catalog.register(
        ModelSpec(
            name="llama-3.3-70b",
            tier=Tier.MINI,
            context_window=131_072,
            max_output_tokens=8_192,
            pricing=Pricing(input=D("0.10"), cached_input=D("0.01"), output=D("0.30")),
            provider="vllm",
        ),
        default_for_tier=True,
    )
    assert catalog.for_tier(Tier.MINI) is spec
    assert (
        spec.cost(usage(1_000, 500, cached=200))
        == (800 * D("0.10") + 200 * D("0.01") + 500 * D("0.30")) / 1_000_000
    )


def test_spec_without_price_source_fails_clearly() -> None:
    spec = ModelSpec(
        name="no-such-model-anywhere", tier=Tier.NANO, context_window=1, max_output_tokens=1
    )
    with pytest.raises(UserError, match="explicit `pricing=Pricing"):
        spec.prices()


def test_override_prices(catalog: Catalog) -> None:
    negotiated = Pricing(input=D("0.50"), cached_input=D("0.05"), output=D("3.00"))
    spec = catalog.override_prices("gpt-5.4-mini", negotiated)
    assert catalog["gpt-5.4-mini"] is spec
    assert spec.tier is Tier.MINI
    assert spec.cost(usage(1_000, 500)) == D("0.002")
    # a fresh default catalog still has the published price
    assert default_catalog()["gpt-5.4-mini"].cost(usage(1_000, 500)) == D("0.003")


def test_copy_is_independent(catalog: Catalog) -> None:
    copy = catalog.copy()
    copy.override_prices("gpt-5.4-nano", FREE)
    copy.register(
        ModelSpec(
            name="extra", tier=Tier.FLAGSHIP, context_window=1, max_output_tokens=1, pricing=FREE
        ),
        default_for_tier=True,
    )
    assert catalog["gpt-5.4-nano"].cost(usage(1_000, 500)) == D("0.000825")
    assert "extra" not in catalog
    assert catalog.for_tier(Tier.FLAGSHIP).name == "gpt-5.4"
    assert copy.for_tier(Tier.FLAGSHIP).name == "extra"


def test_empty_catalog_for_tier() -> None:
    with pytest.raises(UserError, match="no model is registered for tier 'mini'"):
        Catalog().for_tier(Tier.MINI)


def test_unknown_model_message(catalog: Catalog) -> None:
    with pytest.raises(UnknownModel) as info:
        catalog["gpt-9"]
    assert info.value.name == "gpt-9"
    assert str(info.value) == (
        "unknown model 'gpt-9': register it with `catalog.register(ModelSpec(...))` "
        "or use one of: gpt-5.4, gpt-5.4-mini, gpt-5.4-nano"
    )
    assert isinstance(info.value, UserError)


def test_membership_and_get_do_not_raise(catalog: Catalog) -> None:
    assert "gpt-5.4" in catalog
    assert "gpt-9" not in catalog
    assert catalog.get("gpt-9") is None


# --- tiers ------------------------------------------------------------------------------


def test_tier_names_and_the_standard_order() -> None:
    assert list(Tier) == [Tier.NANO, Tier.MINI, Tier.FLAGSHIP]
    assert Tier("mini") is Tier.MINI
    assert Tier.MINI.value == "mini"
    assert str(Tier.MINI) == "mini"
    assert Tier.MINI == "mini"
    assert Tier("pro") is Tier("pro")
    assert Tier("pro") not in list(Tier)


def test_a_tier_name_must_be_a_plain_lowercase_word() -> None:
    for bad in ("", "Pro", "two words", "x" * 40):
        with pytest.raises(ValueError, match="lowercase"):
            Tier(bad)


def test_tiers_pickle_and_copy_to_the_same_object() -> None:
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(Tier.MINI)) is Tier.MINI
    assert copy.deepcopy(Tier("pro")) is Tier("pro")


# --- usage ------------------------------------------------------------------------------


def test_usage_addition() -> None:
    a = Usage(
        input_tokens=100, cached_input_tokens=40, output_tokens=10, reasoning_tokens=5, requests=1
    )
    b = Usage(
        input_tokens=200, cached_input_tokens=0, output_tokens=30, reasoning_tokens=0, requests=2
    )
    assert a + b == Usage(
        input_tokens=300, cached_input_tokens=40, output_tokens=40, reasoning_tokens=5, requests=3
    )
    assert (a + b).total_tokens == 340
    assert a + Usage() == a
    assert sum((a, b), Usage()) == a + b


# --- ledger -----------------------------------------------------------------------------


def test_ledger_records_charges(catalog: Catalog) -> None:
    ledger = Ledger()
    nano = ledger.record(catalog["gpt-5.4-nano"], usage(1_000, 500, requests=1))
    mini = ledger.record(catalog["gpt-5.4-mini"], usage(1_000, 500, requests=1))
    assert nano.model == "gpt-5.4-nano"
    assert nano.tier is Tier.NANO
    assert nano.cost == nano.equivalent_cost == D("0.000825")
    assert mini.cost == D("0.003")
    assert ledger.charges == [nano, mini]
    assert ledger.usage == usage(2_000, 1_000, requests=2)
    assert ledger.cost == D("0.003825")
    assert ledger.equivalent_cost == ledger.cost


def test_ledger_flagship_counterfactual(catalog: Catalog) -> None:
    ledger = Ledger()
    charge = ledger.record(catalog["gpt-5.4-nano"], usage(1_000, 500))
    ledger.record(catalog["gpt-5.4-nano"], usage(200, 30))
    # the same tokens on gpt-5.4 at $2.50 / $15.00
    assert charge.flagship_cost == D("0.01")
    assert ledger.flagship_cost == D("0.01") + (200 * D("2.50") + 30 * D("15")) / 1_000_000
    assert ledger.flagship_cost == D("0.01095")


def test_ledger_by_tier_cheapest_first(catalog: Catalog) -> None:
    ledger = Ledger()
    ledger.record(catalog["gpt-5.4"], usage(1_000, 0))
    ledger.record(catalog["gpt-5.4-nano"], usage(1_000, 500))
    ledger.record(catalog["gpt-5.4-nano"], usage(200, 30))
    totals = ledger.by_tier()
    assert list(totals) == [Tier.NANO, Tier.FLAGSHIP]
    assert totals[Tier.NANO].usage == usage(1_200, 530)
    assert totals[Tier.NANO].cost == D("0.0009025")
    assert totals[Tier.FLAGSHIP].cost == D("0.0025")


def test_ledger_equivalent_cost_for_a_free_model() -> None:
    local = ModelSpec(
        name="qwen-local",
        tier=Tier.MINI,
        context_window=32_768,
        max_output_tokens=8_192,
        pricing=FREE,
        equivalent="gpt-5.4-mini",
    )
    ledger = Ledger(Budget(usd=D("0.005")))
    charge = ledger.record(local, usage(1_000, 500))
    assert charge.cost == 0
    assert charge.equivalent_cost == D("0.003")
    assert ledger.cost == 0
    assert ledger.equivalent_cost == D("0.003")
    assert ledger.by_tier()[Tier.MINI].equivalent_cost == D("0.003")
    # with no real spend, the budget counts the equivalent dollars
    assert ledger.budget_dollars == D("0.003")
    ledger.check()
    ledger.record(local, usage(1_000, 500))
    with pytest.raises(BudgetExceeded):
        ledger.check()


def test_ledger_custom_flagship(catalog: Catalog) -> None:
    flagship = ModelSpec(
        name="big",
        tier=Tier.FLAGSHIP,
        context_window=1,
        max_output_tokens=1,
        pricing=Pricing(input=D(10), cached_input=D(1), output=D(100)),
    )
    ledger = Ledger(flagship=flagship)
    ledger.record(catalog["gpt-5.4-nano"], usage(1_000, 500))
    assert ledger.flagship_cost == D("0.06")


def test_budget_usd(catalog: Catalog) -> None:
    ledger = Ledger(Budget(usd=D("0.0035")))
    ledger.check()
    ledger.record(catalog["gpt-5.4-mini"], usage(1_000, 500))
    ledger.check()  # $0.003 < $0.0035
    ledger.record(catalog["gpt-5.4-nano"], usage(1_000, 500))
    with pytest.raises(BudgetExceeded) as info:
        ledger.check()
    assert info.value.what == "dollars"
    assert info.value.limit == D("0.0035")
    assert info.value.spent == D("0.003825")
    assert "raise the budget" in str(info.value)


def test_budget_usd_from_float_is_exact() -> None:
    assert Budget(usd=0.1).usd == D("0.1")  # type: ignore[arg-type]


def test_budget_tokens(catalog: Catalog) -> None:
    ledger = Ledger(Budget(tokens=1_500))
    ledger.record(catalog["gpt-5.4-nano"], usage(1_000, 499))
    ledger.check()
    ledger.record(catalog["gpt-5.4-nano"], usage(1, 0))
    with pytest.raises(BudgetExceeded) as info:
        ledger.check()
    assert (info.value.what, info.value.limit, info.value.spent) == ("tokens", 1_500, 1_500)


def test_budget_requests(catalog: Catalog) -> None:
    ledger = Ledger(Budget(requests=2))
    for _ in range(2):
        ledger.check()
        ledger.record(catalog["gpt-5.4-nano"], usage(10, 10, requests=1))
    with pytest.raises(BudgetExceeded) as info:
        ledger.check()
    assert (info.value.what, info.value.limit, info.value.spent) == ("requests", 2, 2)


def test_unlimited_budget_never_raises(catalog: Catalog) -> None:
    ledger = Ledger()
    for _ in range(50):
        ledger.record(catalog["gpt-5.4"], usage(1_000_000, 100_000, requests=1))
    ledger.check()
