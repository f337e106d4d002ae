"""Money: ISO 4217 minor units, one half-even rounding to them, Babel formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import get_currency_precision
from hypothesis import given
from hypothesis import strategies as st

from services.core.money import format_money, from_minor, is_currency, minor_digits, to_minor

CURRENCIES = ["EUR", "HUF", "JPY", "KWD", "PLN", "RON", "SEK"]
amounts = st.decimals(min_value=-(10**12), max_value=10**12, places=8, allow_nan=False, allow_infinity=False)


def _plain(text: str) -> str:
    """Babel separates with no-break and narrow no-break spaces; compare with plain ones."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def test_minor_digits_follow_iso_4217() -> None:
    assert [minor_digits(c) for c in ("EUR", "JPY", "KWD", "SEK")] == [2, 0, 3, 2]


def test_huf_has_two_minor_digits_although_babel_says_zero() -> None:
    assert get_currency_precision("HUF") == 0  # CLDR's everyday display digits
    assert minor_digits("HUF") == 2  # ISO 4217, what invoices and payment systems count in


def test_is_currency_needs_three_known_upper_case_letters() -> None:
    assert is_currency("EUR")
    assert not any(is_currency(code) for code in ("eur", "EURO", "EU", "ABC", ""))


def test_unknown_currency_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        minor_digits("ABC")


def test_to_minor_rounds_exact_halves_to_even() -> None:
    assert to_minor(Decimal("0.125"), "EUR") == 12
    assert to_minor(Decimal("0.135"), "EUR") == 14
    assert to_minor(Decimal("-0.125"), "EUR") == -12
    assert [to_minor(Decimal(v), "JPY") for v in ("0.5", "1.5", "2.5")] == [0, 2, 2]


def test_to_minor_uses_three_digits_for_kwd() -> None:
    assert to_minor(Decimal("1.2345"), "KWD") == 1234


def test_to_minor_rejects_floats() -> None:
    with pytest.raises(TypeError):
        to_minor(0.1, "EUR")  # type: ignore[arg-type]


def test_to_minor_rejects_non_finite_amounts() -> None:
    with pytest.raises(ValueError, match="finite"):
        to_minor(Decimal("NaN"), "EUR")


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_to_minor_is_within_half_a_minor_unit(amount: Decimal, currency: str) -> None:
    exact = amount.scaleb(minor_digits(currency))
    assert abs(to_minor(amount, currency) - exact) <= Decimal("0.5")


@given(minor=st.integers(min_value=-(10**15), max_value=10**15), currency=st.sampled_from(CURRENCIES))
def test_amounts_already_in_minor_units_pass_unchanged(minor: int, currency: str) -> None:
    assert to_minor(from_minor(minor, currency), currency) == minor


@given(major=st.integers(min_value=-(10**12), max_value=10**12), currency=st.sampled_from(CURRENCIES))
def test_whole_amounts_scale_exactly(major: int, currency: str) -> None:
    assert to_minor(Decimal(major), currency) == major * 10 ** minor_digits(currency)


@given(minor=st.integers(min_value=-(10**12), max_value=10**12))
def test_exact_halves_go_to_the_even_neighbour(minor: int) -> None:
    half = (Decimal(minor) + Decimal("0.5")).scaleb(-2)
    rounded = to_minor(half, "EUR")
    assert rounded in (minor, minor + 1)
    assert rounded % 2 == 0


@pytest.mark.parametrize(
    ("locale", "currency", "minor", "shown"),
    [
        ("fr_FR", "EUR", 123456, "1 234,56 €"),
        ("pl_PL", "PLN", 123456, "1 234,56 zł"),
        ("ro_RO", "RON", 123456, "1.234,56 RON"),  # CLDR's Romanian symbol is "RON", not "lei"
        ("sv_SE", "SEK", 123456, "1 234,56 kr"),
        ("hu_HU", "HUF", 123456, "1 234,56 Ft"),
        ("ja_JP", "JPY", 1234, "￥1,234"),
        ("de_DE", "EUR", -5, "-0,05 €"),
    ],
)
def test_format_money_follows_the_locale(locale: str, currency: str, minor: int, shown: str) -> None:
    assert _plain(format_money(minor, currency, locale)) == shown


def test_format_money_shows_the_iso_decimals_babel_would_round_away() -> None:
    assert _plain(format_money(100050, "HUF", "hu_HU")) == "1 000,50 Ft"


def test_format_money_accepts_bcp47_tags() -> None:
    assert format_money(1, "EUR", "fr-FR") == format_money(1, "EUR", "fr_FR")
