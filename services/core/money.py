"""Money: currencies' minor units, the one rounding to them, and formatting for a locale.

Amounts are ``Decimal`` in major units (euros) until an invoice line is rounded,
once, half-even, to integer minor units (cents) by ``to_minor``; from there on
money is an ``int`` of minor units. Floats never carry money.

Minor units follow ISO 4217, which is what payment systems and invoices use.
Babel answers from CLDR, whose ``digits`` are the decimals people usually show:
for a few currencies that is fewer than ISO 4217 (Babel says 0 for HUF, ISO says
2), so those are corrected here from the ISO table.
"""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, localcontext
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision, list_currencies

# ISO 4217 minor units where CLDR's ``digits`` (read by Babel) show fewer decimals.
# Checked against Babel 2.19 / CLDR: every other code Babel lists agrees with ISO.
_ISO_DIGITS_WHERE_CLDR_DIFFERS: dict[str, int] = {
    "AFN": 2,
    "ALL": 2,
    "COP": 2,
    "HUF": 2,
    "IDR": 2,
    "IQD": 3,
    "IRR": 2,
    "KPW": 2,
    "LAK": 2,
    "LBP": 2,
    "MGA": 2,
    "MMK": 2,
    "SOS": 2,
    "SYP": 2,
    "YER": 2,
}

# Enough digits for any amount a line can hold with all its decimals; an operation that would
# need more raises (Inexact is trapped) instead of rounding silently.
_EXACT = Context(prec=38, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Inexact])


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """True for a known ISO 4217 code, written as three upper-case letters."""
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper() and code in _currencies()


def _require_currency(currency: str) -> None:
    if not is_currency(currency):
        raise ValueError(f"unknown currency code {currency!r}")


def minor_digits(currency: str) -> int:
    """Decimals of the currency's minor unit per ISO 4217 (EUR 2, HUF 2, JPY 0, KWD 3)."""
    _require_currency(currency)
    return _ISO_DIGITS_WHERE_CLDR_DIFFERS.get(currency, get_currency_precision(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """Round ``amount`` (major units) once, half-even, to an integer number of minor units."""
    if not isinstance(amount, Decimal):  # a float here would already have lost the exact value
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"amount must be finite, got {amount}")
    digits = minor_digits(currency)
    with localcontext(_EXACT):
        scaled = amount.scaleb(digits)  # exact: only the exponent moves
        return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


def from_minor(minor: int, currency: str) -> Decimal:
    """The exact major-unit amount of ``minor`` minor units (1234 EUR cents -> 12.34)."""
    return Decimal(minor).scaleb(-minor_digits(currency))


def format_money(minor: int, currency: str, locale: str) -> str:
    """Minor units shown the locale's way with the currency's ISO decimals ("1 234,56 €" in fr_FR).

    Babel would round to CLDR's decimals (HUF 1234.56 shown as "1 235 Ft"); an invoice must show
    exactly what it charges, so the locale's pattern is kept and its decimals set to ISO's.
    """
    digits = minor_digits(currency)
    try:
        parsed = Locale.parse(locale.replace("-", "_"))
    except (ValueError, UnknownLocaleError) as error:
        raise ValueError(f"unknown locale {locale!r}") from error
    pattern = copy.copy(parsed.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return format_currency(
        from_minor(minor, currency), currency, format=pattern, locale=parsed, currency_digits=False
    )


def format_unit_price(amount: Decimal, currency: str, locale: str) -> str:
    """A unit price in major units, which may go below the minor unit ("0,4125 €"): the
    currency's decimals at least, up to six."""
    digits = minor_digits(currency)
    parsed = Locale.parse(locale.replace("-", "_"))
    pattern = copy.copy(parsed.currency_formats["standard"])
    pattern.frac_prec = (digits, max(digits, 6))
    return format_currency(amount, currency, format=pattern, locale=parsed, currency_digits=False)
