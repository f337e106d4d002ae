"""SLA credit bands: monotonic terms, the credit of the lowest band attainment is under, the cap."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.billing.credits import Band, band_errors, credit_amount, credit_percent

D = Decimal
BANDS = (Band(D(99), D(5)), Band(D(98), D(10)), Band(D(95), D(25)))
percents = st.decimals(min_value=D("0.01"), max_value=100, places=2)
attainments = st.decimals(min_value=0, max_value=100, places=3)


@st.composite
def band_terms(draw: st.DrawFn) -> tuple[tuple[Band, ...], Decimal]:
    """Valid bands: thresholds going down while credits go up, and a cap."""
    size = draw(st.integers(min_value=0, max_value=5))
    belows = sorted(draw(st.sets(percents, min_size=size, max_size=size)), reverse=True)
    credits = sorted(draw(st.sets(percents, min_size=size, max_size=size)))
    return tuple(Band(b, c) for b, c in zip(belows, credits, strict=True)), draw(percents)


def test_attainment_at_or_above_every_band_earns_no_credit() -> None:
    assert credit_percent(D("99.5"), BANDS, D(30)) == 0


def test_attainment_equal_to_a_threshold_is_not_below_it() -> None:
    assert credit_percent(D(99), BANDS, D(30)) == 0
    assert credit_percent(D(98), BANDS, D(30)) == D(5)


def test_the_lowest_band_attainment_is_under_sets_the_credit() -> None:
    assert credit_percent(D("98.9"), BANDS, D(30)) == D(5)
    assert credit_percent(D(97), BANDS, D(30)) == D(10)
    assert credit_percent(D(90), BANDS, D(30)) == D(25)


def test_the_cap_limits_the_credit() -> None:
    assert credit_percent(D(90), BANDS, D(20)) == D(20)


def test_nothing_measured_earns_no_credit() -> None:
    assert credit_percent(None, BANDS, D(30)) == 0


def test_attainment_outside_0_to_100_is_rejected() -> None:
    with pytest.raises(ValueError, match="attainment"):
        credit_percent(D(101), BANDS, D(30))


def test_invalid_bands_earn_no_guessed_credit() -> None:
    with pytest.raises(ValueError, match="/bands/1/below"):
        credit_percent(D(50), (Band(D(95), D(5)), Band(D(98), D(10))), D(30))


def test_credit_amount_is_the_percent_of_the_base_unrounded() -> None:
    assert credit_amount(D("4321.0625"), D(5)) == D("216.053125")


def test_credit_amount_needs_a_non_negative_base() -> None:
    with pytest.raises(ValueError, match="base"):
        credit_amount(D(-1), D(5))


def test_valid_bands_have_no_errors() -> None:
    assert band_errors(BANDS, D(30)) == []


def test_a_credit_above_the_cap_is_allowed() -> None:
    assert band_errors((Band(D(95), D(50)),), D(30)) == []


def test_thresholds_must_go_down() -> None:
    errors = band_errors((Band(D(98), D(5)), Band(D(98), D(10))), D(30))
    assert [pointer for pointer, _ in errors] == ["/bands/1/below"]


def test_credits_must_go_up() -> None:
    errors = band_errors((Band(D(99), D(10)), Band(D(98), D(10))), D(30))
    assert [pointer for pointer, _ in errors] == ["/bands/1/credit_percent"]


def test_cap_above_100_is_an_error() -> None:
    assert [pointer for pointer, _ in band_errors(BANDS, D(101))] == ["/cap"]


def test_cap_must_be_positive() -> None:
    assert [pointer for pointer, _ in band_errors(BANDS, D(0))] == ["/cap"]


def test_band_values_must_be_in_0_to_100() -> None:
    errors = band_errors((Band(D(0), D(5)), Band(D(-5), D(101))), D(30))
    assert [pointer for pointer, _ in errors] == [
        "/bands/0/below",
        "/bands/1/below",
        "/bands/1/credit_percent",
    ]


@given(terms=band_terms(), a=attainments, b=attainments)
def test_credit_never_increases_with_attainment(
    terms: tuple[tuple[Band, ...], Decimal], a: Decimal, b: Decimal
) -> None:
    bands, cap = terms
    low, high = sorted((a, b))
    assert credit_percent(low, bands, cap) >= credit_percent(high, bands, cap)


@given(terms=band_terms(), attainment=attainments)
def test_credit_is_never_above_the_cap(terms: tuple[tuple[Band, ...], Decimal], attainment: Decimal) -> None:
    bands, cap = terms
    assert 0 <= credit_percent(attainment, bands, cap) <= cap


@given(terms=band_terms(), data=st.data())
def test_band_errors_catch_bands_out_of_order(
    terms: tuple[tuple[Band, ...], Decimal], data: st.DataObject
) -> None:
    bands, cap = terms
    assume(len(bands) >= 2)
    order = data.draw(st.permutations(range(len(bands))))
    assume(list(order) != sorted(order))
    assert band_errors([bands[i] for i in order], cap) != []


@given(terms=band_terms(), excess=st.decimals(min_value=D("0.01"), max_value=1000, places=2))
def test_band_errors_catch_a_cap_above_100(terms: tuple[tuple[Band, ...], Decimal], excess: Decimal) -> None:
    bands, _cap = terms
    assert ("/cap", "cap must be greater than 0 and at most 100") in band_errors(bands, 100 + excess)
