"""VAT: number shapes, reverse charge between member states, VAT rounded once per rate."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.tax import (
    EU_COUNTRIES,
    REVERSE_CHARGE_ARTICLE,
    TaxTreatment,
    normalise_vat_number,
    tax_by_rate,
    treatment,
    vat_number_error,
)
from services.core.money import to_minor

D = Decimal
RATES = [D(0), D("5.5"), D(10), D(20), D(27)]


@pytest.mark.parametrize(
    "number",
    [
        "FR40303265045",
        "FRK7399859412",
        "DE136695976",
        "PL5260250274",
        "RO18547290",
        "ESA28015865",
        "ESX1234567L",
        "HU12892312",
        "SE556703748501",
        "IT00743110157",
        "NL004495445B01",
        "BE0202239951",
        "EL094019245",
        "ATU13585627",
        "IE6388047V",
        "IE3668997OH",
        "DK13585628",
        "CZ699003154",
        "XI123456789",
    ],
)
def test_well_formed_vat_numbers_are_accepted(number: str) -> None:
    assert vat_number_error(number) is None


def test_spaces_dots_and_dashes_are_ignored() -> None:
    assert normalise_vat_number(" fr 40.303-265-045 ") == "FR40303265045"
    assert vat_number_error("fr 40.303-265-045") is None


@pytest.mark.parametrize(
    "number",
    [
        "DE12345678",  # 8 digits, DE has 9
        "DE1234567890",  # 10 digits
        "PL526025027",  # 9 digits, PL has 10
        "HU128923121",  # 9 digits, HU has 8
        "DE12345678A",  # a letter where digits are required
        "IT0074311015X",
        "FRIO303265045",  # I and O are never used in the French key
        "NL004495445A01",  # B is the only letter NL takes there
        "SE556703748599",  # Swedish numbers end in 01
        "RO1",  # RO has 2 to 10 digits
    ],
)
def test_malformed_vat_numbers_are_rejected(number: str) -> None:
    message = vat_number_error(number)
    assert message is not None
    assert message.startswith(f"not a valid {number[:2]} VAT number")


def test_unknown_country_prefix_is_rejected() -> None:
    assert vat_number_error("XX123456789") == (
        "unknown country prefix 'XX': a VAT number starts with an EU country code"
    )
    assert vat_number_error("GB123456789") is not None  # the UK left the EU VAT area in 2021


def test_greek_numbers_use_el_not_gr() -> None:
    assert vat_number_error("GR094019245") == "Greek VAT numbers start with EL, not GR"


def test_an_empty_vat_number_is_rejected() -> None:
    assert vat_number_error(" - ") == "a VAT number is required"


def test_eu_countries_are_the_27_member_states_in_iso_codes() -> None:
    assert len(EU_COUNTRIES) == 27
    assert "GR" in EU_COUNTRIES
    assert not {"EL", "GB", "XI", "CH"} & EU_COUNTRIES


def test_cross_border_business_with_a_valid_number_is_reverse_charged() -> None:
    assert treatment("FR", "DE", "DE136695976", D(20)) == TaxTreatment(rate=D(0), reverse_charge=True)


def test_greek_buyer_with_an_el_number_is_reverse_charged() -> None:
    assert treatment("FR", "GR", "EL094019245", D(20)).reverse_charge


def test_domestic_buyer_pays_the_domestic_rate() -> None:
    assert treatment("FR", "FR", "FR40303265045", D(20)) == TaxTreatment(rate=D(20), reverse_charge=False)


def test_buyer_without_a_vat_number_pays_the_domestic_rate() -> None:
    assert treatment("FR", "DE", None, D(20)) == TaxTreatment(rate=D(20), reverse_charge=False)


def test_malformed_buyer_number_pays_the_domestic_rate() -> None:
    assert not treatment("FR", "DE", "DE1234", D(20)).reverse_charge


def test_buyer_number_of_another_state_pays_the_domestic_rate() -> None:
    assert not treatment("FR", "DE", "PL5260250274", D(20)).reverse_charge


def test_northern_irish_number_does_not_reverse_charge_services() -> None:
    assert not treatment("FR", "GB", "XI123456789", D(20)).reverse_charge


def test_reverse_charge_cites_article_196() -> None:
    assert REVERSE_CHARGE_ARTICLE == "Article 196, Council Directive 2006/112/EC"


def test_vat_is_rounded_once_per_rate_not_per_line() -> None:
    lines = [(D(20), 13), (D(20), 13), (D(20), 13)]  # three lines of 0.13 EUR
    per_line = sum(to_minor(D(minor) * D(20) / 100 / 100, "EUR") for _, minor in lines)
    assert per_line == 9  # 2.6 cents rounds to 3, three times
    assert tax_by_rate(lines, "EUR") == {D(20): 8}  # 39 cents * 20 % = 7.8 cents


def test_vat_is_computed_separately_for_each_rate() -> None:
    assert tax_by_rate([(D(20), 10000), (D("5.5"), 10000), (D(20), 5000)], "EUR") == {
        D(20): 3000,
        D("5.5"): 550,
    }


def test_credit_lines_reduce_the_taxable_subtotal() -> None:
    assert tax_by_rate([(D(20), 100000), (D(20), -5000)], "EUR") == {D(20): 19000}


def test_half_a_minor_unit_of_vat_rounds_to_even() -> None:
    assert tax_by_rate([(D(10), 25)], "EUR") == {D(10): 2}  # 2.5 cents
    assert tax_by_rate([(D(10), 35)], "EUR") == {D(10): 4}  # 3.5 cents


def test_tax_by_rate_rejects_unknown_currencies() -> None:
    with pytest.raises(ValueError, match="currency"):
        tax_by_rate([(D(20), 100)], "EURO")


@given(
    lines=st.lists(
        st.tuples(st.sampled_from(RATES), st.integers(min_value=-(10**9), max_value=10**9)), max_size=20
    )
)
def test_vat_per_rate_is_within_half_a_minor_unit_of_exact(lines: list[tuple[Decimal, int]]) -> None:
    taxes = tax_by_rate(lines, "EUR")
    assert set(taxes) == {rate for rate, _ in lines}
    for rate, tax in taxes.items():
        subtotal = sum(minor for r, minor in lines if r == rate)
        assert abs(tax - D(subtotal) * rate / 100) <= D("0.5")
