"""VAT: the shape of EU VAT numbers, which treatment an invoice gets, and VAT per rate.

The number check is about format only (country prefix and the official pattern of
each state); whether a number is registered is VIES's answer, asked elsewhere.
Tax is computed on each rate's taxable subtotal in minor units and rounded once,
half-even, per rate, never per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, localcontext

from services.core.money import is_currency

REVERSE_CHARGE_ARTICLE = "Article 196, Council Directive 2006/112/EC"

# ISO 3166 alpha-2 codes of the 27 member states (Greece is GR here, EL in VAT numbers).
EU_COUNTRIES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip

# VAT prefix -> (pattern of what follows it, the shape in words for the message). Patterns are
# the formats the European Commission publishes for VIES; XI is Northern Ireland (goods only).
_VAT_FORMATS: dict[str, tuple[str, str]] = {
    "AT": (r"U[0-9]{8}", "U and 8 digits"),
    "BE": (r"[01][0-9]{9}", "10 digits starting with 0 or 1"),
    "BG": (r"[0-9]{9,10}", "9 or 10 digits"),
    "CY": (r"[0-9]{8}[A-Z]", "8 digits and a letter"),
    "CZ": (r"[0-9]{8,10}", "8 to 10 digits"),
    "DE": (r"[0-9]{9}", "9 digits"),
    "DK": (r"[0-9]{8}", "8 digits"),
    "EE": (r"[0-9]{9}", "9 digits"),
    "EL": (r"[0-9]{9}", "9 digits"),
    "ES": (r"[0-9A-Z][0-9]{7}[0-9A-Z]", "a letter or digit, 7 digits, a letter or digit"),
    "FI": (r"[0-9]{8}", "8 digits"),
    "FR": (r"[0-9A-HJ-NP-Z]{2}[0-9]{9}", "2 letters or digits (not I or O) and 9 digits"),
    "HR": (r"[0-9]{11}", "11 digits"),
    "HU": (r"[0-9]{8}", "8 digits"),
    "IE": (r"[0-9]{7}[A-W][A-I]?|[0-9][A-Z+*][0-9]{5}[A-W]", "8 or 9 characters: digits and letters"),
    "IT": (r"[0-9]{11}", "11 digits"),
    "LT": (r"[0-9]{9}|[0-9]{12}", "9 or 12 digits"),
    "LU": (r"[0-9]{8}", "8 digits"),
    "LV": (r"[0-9]{11}", "11 digits"),
    "MT": (r"[0-9]{8}", "8 digits"),
    "NL": (r"[0-9]{9}B[0-9]{2}", "9 digits, B and 2 digits"),
    "PL": (r"[0-9]{10}", "10 digits"),
    "PT": (r"[0-9]{9}", "9 digits"),
    "RO": (r"[0-9]{2,10}", "2 to 10 digits"),
    "SE": (r"[0-9]{10}01", "12 digits ending in 01"),
    "SI": (r"[0-9]{8}", "8 digits"),
    "SK": (r"[0-9]{10}", "10 digits"),
    "XI": (r"[0-9]{9}|[0-9]{12}|GD[0-4][0-9]{2}|HA[5-9][0-9]{2}", "9 or 12 digits, or GD/HA and 3 digits"),
}
_VAT_PATTERNS = {prefix: re.compile(pattern) for prefix, (pattern, _shape) in _VAT_FORMATS.items()}
_IGNORED = re.compile(r"[\s.\-]")
# The VAT prefix of a member state differs from its ISO code only for Greece.
_VAT_PREFIX = {country: "EL" if country == "GR" else country for country in EU_COUNTRIES}

_EXACT = Context(prec=38, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Inexact])


def normalise_vat_number(number: str) -> str:
    """Upper case, without the spaces, dots and dashes people type ("fr 40.303-265-045")."""
    return _IGNORED.sub("", number).upper()


def vat_number_error(number: str) -> str | None:
    """Why ``number`` is not shaped like an EU (or Northern Irish) VAT number, or None if it is."""
    normalised = normalise_vat_number(number)
    if not normalised:
        return "a VAT number is required"
    prefix, rest = normalised[:2], normalised[2:]
    if prefix not in _VAT_PATTERNS:
        if prefix == "GR":
            return "Greek VAT numbers start with EL, not GR"
        return f"unknown country prefix {prefix!r}: a VAT number starts with an EU country code"
    if not _VAT_PATTERNS[prefix].fullmatch(rest):
        return f"not a valid {prefix} VAT number: expected {prefix} then {_VAT_FORMATS[prefix][1]}"
    return None


@dataclass(frozen=True)
class TaxTreatment:
    rate: Decimal  # percent, e.g. Decimal("20")
    reverse_charge: bool  # the buyer accounts for the VAT (the invoice cites REVERSE_CHARGE_ARTICLE)


def treatment(
    seller_country: str, buyer_country: str, buyer_vat_number: str | None, domestic_rate: Decimal
) -> TaxTreatment:
    """Reverse charge for a business in another member state with a well-formed VAT number of that
    state; otherwise the seller's domestic rate.

    Countries are ISO alpha-2 (GR for Greece). An XI number does not qualify: Northern
    Ireland is in the EU VAT area for goods only, and this platform sells services.
    """
    if not domestic_rate.is_finite() or not 0 <= domestic_rate < 100:
        raise ValueError(f"a VAT rate is a percent between 0 and 100, got {domestic_rate}")
    seller, buyer = seller_country.upper(), buyer_country.upper()
    if (
        seller in EU_COUNTRIES
        and buyer in EU_COUNTRIES
        and seller != buyer
        and buyer_vat_number is not None
        and vat_number_error(buyer_vat_number) is None
        and normalise_vat_number(buyer_vat_number).startswith(_VAT_PREFIX[buyer])
    ):
        return TaxTreatment(rate=Decimal(0), reverse_charge=True)
    return TaxTreatment(rate=domestic_rate, reverse_charge=False)


def tax_by_rate(lines: list[tuple[Decimal, int]], currency: str) -> dict[Decimal, int]:
    """VAT in minor units per rate, from (rate percent, taxable minor units) lines.

    Credits are negative lines. Each rate's subtotal is taxed and rounded once, half-even, so
    the VAT is within half a minor unit of the exact tax of that subtotal.
    """
    if not is_currency(currency):
        raise ValueError(f"unknown currency code {currency!r}")
    subtotals: dict[Decimal, int] = {}
    for rate, taxable in lines:
        if not rate.is_finite() or not 0 <= rate < 100:
            raise ValueError(f"a VAT rate is a percent between 0 and 100, got {rate}")
        subtotals[rate] = subtotals.get(rate, 0) + taxable
    with localcontext(_EXACT):
        return {
            rate: int((Decimal(subtotal) * rate / 100).to_integral_value(rounding=ROUND_HALF_EVEN))
            for rate, subtotal in subtotals.items()
        }
