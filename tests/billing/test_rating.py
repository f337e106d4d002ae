"""The rate card engine: tiers, flat prices, proration by contract version, surcharges."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.billing.credits import Band, credit_amount, credit_percent
from services.billing.rating import (
    Price,
    Surcharge,
    Tier,
    TierMode,
    charge,
    days_in_force,
    price_errors,
    prorated,
    surcharge_amount,
    surcharge_applies,
    surcharge_errors,
    tier_errors,
)
from services.billing.tax import tax_by_rate, treatment
from services.core.money import to_minor

D = Decimal
TICKETS = (Tier(D(0), D(1000), D("2.35")), Tier(D(1000), None, D("1.95")))

unit_prices = st.decimals(min_value=0, max_value=100, places=4)
flat_fees = st.decimals(min_value=0, max_value=500, places=2)
quantities = st.decimals(min_value=0, max_value=50_000, places=2)


@st.composite
def tier_cards(draw: st.DrawFn, fees: bool = True) -> tuple[Tier, ...]:
    """A valid card: 1 to 5 contiguous tiers from 0, the last unbounded."""
    bounds = sorted(draw(st.sets(st.decimals(min_value=D("0.01"), max_value=20_000, places=2), max_size=4)))
    firsts, ups = [D(0), *bounds], [*bounds, None]
    return tuple(
        Tier(first, up_to, draw(unit_prices), draw(flat_fees) if fees else D(0))
        for first, up_to in zip(firsts, ups, strict=True)
    )


def graduated(tiers: tuple[Tier, ...]) -> Price:
    return Price(metric="tickets", tiers=tiers)


def volume(tiers: tuple[Tier, ...]) -> Price:
    return Price(metric="tickets", tiers=tiers, mode=TierMode.VOLUME)


# Flat prices and the rounding rule


def test_flat_price_is_quantity_times_unit_price_unrounded() -> None:
    minutes = Price(metric="handle_minutes", unit_price=D("0.4125"))
    assert charge(minutes, D("3050.5")) == D("1258.33125")


def test_a_line_rounds_once_half_even_after_rating() -> None:
    minutes = Price(metric="handle_minutes", unit_price=D("0.4125"))
    assert to_minor(charge(minutes, D("3050.5")), "EUR") == 125833


def test_nothing_used_costs_nothing_even_with_flat_fees() -> None:
    card = (Tier(D(0), D(10), D(1), D(50)), Tier(D(10), None, D(1)))
    assert charge(graduated(card), D(0)) == 0
    assert charge(volume(card), D(0)) == 0


def test_negative_quantity_is_rejected() -> None:
    with pytest.raises(ValueError, match="quantity"):
        charge(graduated(TICKETS), D(-1))


def test_an_invalid_price_is_not_rated() -> None:
    with pytest.raises(ValueError, match="/tiers/1"):
        charge(graduated((Tier(D(0), D(10), D(1)), Tier(D(12), None, D(1)))), D(5))


# Graduated tiers


def test_graduated_prices_each_unit_at_its_own_tier() -> None:
    assert charge(graduated(TICKETS), D(1234)) == D(1000) * D("2.35") + D(234) * D("1.95")


def test_graduated_unit_at_the_boundary_is_in_the_lower_tier() -> None:
    assert charge(graduated(TICKETS), D(1000)) == D("2350.00")
    assert charge(graduated(TICKETS), D(1001)) == D("2351.95")


def test_graduated_flat_fee_is_charged_once_a_tier_is_entered() -> None:
    card = (Tier(D(0), D(10), D(1), D(5)), Tier(D(10), None, D(1), D(100)))
    assert charge(graduated(card), D(10)) == D(15)
    assert charge(graduated(card), D("10.5")) == D("115.5")


@given(card=tier_cards(), a=quantities, b=quantities)
def test_graduated_charge_never_decreases_with_quantity(
    card: tuple[Tier, ...], a: Decimal, b: Decimal
) -> None:
    low, high = sorted((a, b))
    assert charge(graduated(card), low) <= charge(graduated(card), high)


@given(card=tier_cards(), quantity=quantities)
def test_graduated_charge_is_the_sum_of_tier_slices(card: tuple[Tier, ...], quantity: Decimal) -> None:
    expected = D(0)
    for tier in card:
        top = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = max(D(0), top - tier.first)
        expected += units * tier.unit_price + (tier.flat_fee if units > 0 else 0)
    assert charge(graduated(card), quantity) == expected


@given(
    bounds=st.sets(st.integers(min_value=1, max_value=60), max_size=4),
    prices=st.lists(unit_prices, min_size=5, max_size=5),
    quantity=st.integers(min_value=0, max_value=80),
)
def test_graduated_charge_matches_unit_by_unit_pricing(
    bounds: set[int], prices: list[Decimal], quantity: int
) -> None:
    edges = sorted(bounds)
    card = tuple(
        Tier(D(first), None if up_to is None else D(up_to), prices[i])
        for i, (first, up_to) in enumerate(zip([0, *edges], [*edges, None], strict=True))
    )

    def price_of_unit(n: int) -> Decimal:  # unit n occupies (n - 1, n]
        return next(t.unit_price for t in card if t.up_to is None or n <= t.up_to)

    assert charge(graduated(card), D(quantity)) == sum(
        (price_of_unit(n) for n in range(1, quantity + 1)), D(0)
    )


@given(card=tier_cards(), extra=quantities, data=st.data())
def test_graduated_splitting_at_a_boundary_adds_up(
    card: tuple[Tier, ...], extra: Decimal, data: st.DataObject
) -> None:
    assume(len(card) > 1)
    index = data.draw(st.integers(min_value=0, max_value=len(card) - 2))
    boundary = card[index].up_to
    assert boundary is not None
    rest = tuple(
        Tier(t.first - boundary, None if t.up_to is None else t.up_to - boundary, t.unit_price, t.flat_fee)
        for t in card[index + 1 :]
    )
    whole = charge(graduated(card), boundary + extra)
    assert whole == charge(graduated(card), boundary) + charge(graduated(rest), extra)


@given(card=tier_cards(), data=st.data())
def test_graduated_quantity_at_up_to_stays_in_the_lower_tier(
    card: tuple[Tier, ...], data: st.DataObject
) -> None:
    assume(len(card) > 1)
    index = data.draw(st.integers(min_value=0, max_value=len(card) - 2))
    boundary = card[index].up_to
    assert boundary is not None
    lower_tiers = sum(
        ((t.up_to - t.first) * t.unit_price + t.flat_fee for t in card[: index + 1] if t.up_to is not None),
        D(0),
    )
    assert charge(graduated(card), boundary) == lower_tiers


# Volume tiers


def test_volume_prices_every_unit_at_the_tier_of_the_total() -> None:
    assert charge(volume(TICKETS), D(1234)) == D(1234) * D("1.95")


def test_volume_total_at_the_boundary_uses_the_lower_tier() -> None:
    assert charge(volume(TICKETS), D(1000)) == D(1000) * D("2.35")
    assert charge(volume(TICKETS), D("1000.01")) == D("1000.01") * D("1.95")


@given(card=tier_cards(), quantity=quantities)
def test_volume_charge_uses_exactly_one_tier(card: tuple[Tier, ...], quantity: Decimal) -> None:
    assume(quantity > 0)
    (tier,) = [t for t in card if t.first < quantity and (t.up_to is None or quantity <= t.up_to)]
    assert charge(volume(card), quantity) == quantity * tier.unit_price + tier.flat_fee


@given(card=tier_cards(), data=st.data())
def test_volume_boundary_belongs_below_and_the_next_step_above(
    card: tuple[Tier, ...], data: st.DataObject
) -> None:
    assume(len(card) > 1)
    index = data.draw(st.integers(min_value=0, max_value=len(card) - 2))
    lower, upper = card[index], card[index + 1]
    assert lower.up_to is not None
    step = lower.up_to + D("0.01")
    assume(upper.up_to is None or step <= upper.up_to)
    assert charge(volume(card), lower.up_to) == lower.up_to * lower.unit_price + lower.flat_fee
    assert charge(volume(card), step) == step * upper.unit_price + upper.flat_fee


# Checking tiers and prices


def test_valid_tiers_have_no_errors() -> None:
    assert tier_errors(TICKETS) == []


def test_first_tier_must_start_at_zero() -> None:
    assert tier_errors((Tier(D(1), None, D(1)),)) == [(0, "the first tier must start at 0")]


def test_tier_up_to_must_exceed_first() -> None:
    errors = tier_errors((Tier(D(0), D(0), D(1)), Tier(D(0), None, D(1))))
    assert (0, "up_to must be greater than first") in errors


def test_gap_between_tiers_is_an_error() -> None:
    errors = tier_errors((Tier(D(0), D(10), D(1)), Tier(D(11), None, D(1))))
    assert [index for index, message in errors if message.startswith("gap")] == [1]


def test_overlap_between_tiers_is_an_error() -> None:
    errors = tier_errors((Tier(D(0), D(10), D(1)), Tier(D(9), None, D(1))))
    assert [index for index, message in errors if message.startswith("overlap")] == [1]


def test_last_tier_must_be_unbounded() -> None:
    assert tier_errors((Tier(D(0), D(10), D(1)),)) == [(0, "the last tier must be unbounded (up_to null)")]


def test_only_the_last_tier_may_be_unbounded() -> None:
    errors = tier_errors((Tier(D(0), None, D(1)), Tier(D(10), None, D(1))))
    assert (0, "only the last tier may be unbounded") in errors


def test_negative_tier_prices_are_errors() -> None:
    errors = tier_errors((Tier(D(0), None, D(-1), D(-2)),))
    assert errors == [(0, "unit_price must not be negative"), (0, "flat_fee must not be negative")]


def test_non_finite_tier_values_are_errors() -> None:
    assert [index for index, _ in tier_errors((Tier(D(0), None, D("NaN")),))] == [0]


def test_a_price_needs_either_a_unit_price_or_tiers() -> None:
    assert [p for p, _ in price_errors(Price(metric="tickets"))] == ["/unit_price"]
    both = Price(metric="tickets", unit_price=D(1), tiers=TICKETS)
    assert [p for p, _ in price_errors(both)] == ["/unit_price"]


def test_tier_errors_point_into_the_price() -> None:
    price = graduated((Tier(D(0), D(10), D(1)), Tier(D(10), D(20), D(1))))
    assert price_errors(price) == [("/tiers/1", "the last tier must be unbounded (up_to null)")]


# Contract versions in force, proration


def test_version_two_prices_the_days_from_its_effective_date() -> None:
    slices = days_in_force([date(2026, 1, 1), date(2026, 4, 16)], date(2026, 4, 1), date(2026, 5, 1))
    assert slices == [(0, date(2026, 4, 1), date(2026, 4, 16)), (1, date(2026, 4, 16), date(2026, 5, 1))]


def test_days_before_the_first_version_are_not_covered() -> None:
    assert days_in_force([date(2026, 4, 10)], date(2026, 4, 1), date(2026, 5, 1)) == [
        (0, date(2026, 4, 10), date(2026, 5, 1))
    ]


def test_of_two_versions_on_the_same_day_the_later_one_is_in_force() -> None:
    assert days_in_force([date(2026, 4, 1), date(2026, 4, 1)], date(2026, 4, 1), date(2026, 5, 1)) == [
        (1, date(2026, 4, 1), date(2026, 5, 1))
    ]


def test_effective_dates_out_of_order_are_rejected() -> None:
    with pytest.raises(ValueError, match="order"):
        days_in_force([date(2026, 5, 1), date(2026, 4, 1)], date(2026, 4, 1), date(2026, 5, 1))


@given(
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)),
    length=st.integers(min_value=0, max_value=62),
    offsets=st.lists(st.integers(min_value=-40, max_value=100), max_size=6),
)
def test_slices_partition_the_covered_days(start: date, length: int, offsets: list[int]) -> None:
    effective = sorted(start + timedelta(days=o) for o in offsets)
    end = start + timedelta(days=length)
    slices = days_in_force(effective, start, end)
    days = [first + timedelta(days=n) for _, first, stop in slices for n in range((stop - first).days)]
    assert len(days) == len(set(days))  # no day twice
    covered = [
        start + timedelta(days=n)
        for n in range(length)
        if effective and effective[0] <= start + timedelta(days=n)
    ]
    assert days == covered  # none lost, in order
    for index, first, stop in slices:
        for n in range((stop - first).days):
            day = first + timedelta(days=n)
            assert index == max(i for i, e in enumerate(effective) if e <= day)


def test_prorated_half_month_is_half_the_amount() -> None:
    assert prorated(D(3000), 15, 30) == D(1500)


def test_prorated_slice_that_cannot_be_exact_is_carried_to_18_places() -> None:
    assert prorated(D(100), 10, 30) == D("33.333333333333333333")


@given(
    amount=st.decimals(min_value=-(10**9) + 1, max_value=10**9 - 1, places=6),
    days_in_period=st.integers(min_value=28, max_value=31),
    cuts=st.sets(st.integers(min_value=1, max_value=30), max_size=5),
)
def test_prorated_slices_of_a_whole_period_sum_to_the_amount_exactly(
    amount: Decimal, days_in_period: int, cuts: set[int]
) -> None:
    edges = [0, *sorted(c for c in cuts if c < days_in_period), days_in_period]
    parts = [
        prorated(amount, stop - first, days_in_period, days_before=first) for first, stop in pairwise(edges)
    ]
    assert sum(parts, D(0)) == amount
    for (first, stop), part in zip(pairwise(edges), parts, strict=True):
        exact = Fraction(amount) * (stop - first) / days_in_period
        assert abs(Fraction(part) - exact) <= Fraction(1, 10**18)


def test_a_slice_longer_than_the_period_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        prorated(D(100), 20, 30, days_before=15)


# Surcharges


def test_language_surcharge_applies_to_its_languages_only() -> None:
    german = Surcharge(percent=D(10), when="language", languages=("de",))
    assert surcharge_applies(german, language="de", out_of_hours=False)
    assert not surcharge_applies(german, language="fr", out_of_hours=True)


def test_out_of_hours_surcharge_applies_out_of_hours_only() -> None:
    night = Surcharge(percent=D(25), when="out_of_hours")
    assert surcharge_applies(night, language=None, out_of_hours=True)
    assert not surcharge_applies(night, language="de", out_of_hours=False)


def test_surcharge_amount_is_the_percent_of_the_base_unrounded() -> None:
    assert surcharge_amount(
        D("170.15625"), Surcharge(percent=D(10), when="language", languages=("de",))
    ) == D("17.015625")


def test_surcharge_percent_must_be_between_0_and_100() -> None:
    for percent in (D(-1), D(101), D("NaN")):
        assert ("/percent", "percent must be between 0 and 100") in surcharge_errors(
            Surcharge(percent=percent, when="out_of_hours")
        )


def test_surcharge_languages_are_two_lower_case_letters() -> None:
    errors = surcharge_errors(Surcharge(percent=D(10), when="language", languages=("de", "DE", "deu")))
    assert [pointer for pointer, _ in errors] == ["/languages/1", "/languages/2"]


def test_language_surcharge_needs_a_language() -> None:
    assert [p for p, _ in surcharge_errors(Surcharge(percent=D(10), when="language"))] == ["/languages"]


def test_surcharge_when_must_be_known() -> None:
    assert [p for p, _ in surcharge_errors(Surcharge(percent=D(10), when="weekend"))] == ["/when"]


# The worked example of docs/billing.md, kept true by this test


def test_worked_example_of_docs_billing() -> None:
    tickets = graduated(TICKETS)
    minutes = Price(metric="handle_minutes", unit_price=D("0.4125"))
    german = Surcharge(percent=D(10), when="language", languages=("de",))
    april, may = date(2026, 4, 1), date(2026, 5, 1)
    slices = days_in_force([date(2026, 1, 1), date(2026, 4, 16)], april, may)
    assert slices == [(0, april, date(2026, 4, 16)), (1, date(2026, 4, 16), may)]

    ticket_charge = charge(tickets, D(1234))
    time_charge = charge(minutes, D("3050.5"))
    german_work = charge(minutes, D("412.5"))
    surcharge = surcharge_amount(german_work, german)
    usage = ticket_charge + time_charge + surcharge
    monthly_minimum = (D(4000), D(4650))
    minimum = sum(
        (
            prorated(monthly_minimum[v], (end - first).days, 30, days_before=(first - april).days)
            for v, first, end in slices
        ),
        D(0),
    )
    top_up = max(D(0), minimum - usage)
    percent = credit_percent(D("97.2"), (Band(D(98), D(5)), Band(D(95), D(10))), D(15))
    credit = credit_amount(usage + top_up, percent)

    assert (ticket_charge, time_charge, german_work, surcharge) == (
        D("2806.30"),
        D("1258.33125"),
        D("170.15625"),
        D("17.015625"),
    )
    assert (minimum, usage, top_up, credit) == (D(4325), D("4081.646875"), D("243.353125"), D("216.25"))
    lines = [to_minor(amount, "EUR") for amount in (ticket_charge, time_charge, surcharge, top_up, -credit)]
    assert lines == [280630, 125833, 1702, 24335, -21625]
    net = sum(lines)
    assert net == 410875

    domestic = treatment("FR", "FR", "FR40303265045", D(20))
    assert tax_by_rate([(domestic.rate, line) for line in lines], "EUR") == {D(20): 82175}
    reverse = treatment("FR", "DE", "DE136695976", D(20))
    assert reverse.reverse_charge
    assert tax_by_rate([(reverse.rate, line) for line in lines], "EUR") == {D(0): 0}
