"""What people type in a form's text fields, read: lists of "name value" entries ("fr C1,
en B2", one a line or separated by commas), whole numbers and amounts of money (as the
viewer's locale writes them: "14,50" in Bucharest). What cannot be read is
``Unreadable``, said in the viewer's language over the form."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from babel.numbers import NumberFormatError, format_decimal, parse_decimal

from services.core import money
from services.core.i18n import _

_SEPARATORS = re.compile(r"[,\n]")


class Unreadable(ValueError):
    """What was typed cannot be read; said in the viewer's language."""

    def __init__(self, message: str, **variables: str) -> None:
        super().__init__(message % variables)
        self.message, self.variables = message, variables


def parts(text: str) -> list[str]:
    """The non-empty entries of a list typed one a line or separated by commas."""
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]


def entries(text: str) -> list[tuple[str, str]]:
    """ "fr C1, en B2" as [("fr", "C1"), ("en", "B2")]; a name may hold spaces ("data
    entry 3"), its value is the last word."""
    found = []
    for part in parts(text):
        words = part.split()
        if len(words) < 2:
            raise Unreadable(_("“%(entry)s” needs a name and a value, as in “fr C1”"), entry=part)
        found.append((" ".join(words[:-1]), words[-1]))
    return found


def written(pairs: list[dict[str, Any]] | None, name: str, value: str) -> str:
    return ", ".join(f"{pair[name]} {pair[value]}" for pair in pairs or [])


def number(value: str, of: str) -> int:
    if not value.lstrip("-").isdigit():
        raise Unreadable(_("%(name)s: “%(value)s” is not a whole number"), name=of, value=value)
    return int(value)


def minor_units(value: str, currency: str, locale: str) -> int:
    """An amount typed in ``locale``'s way ("14,50", "1 450,00"), in ``currency``'s minor units."""
    code = currency.strip().upper()
    if not money.is_currency(code):
        raise Unreadable(_("“%(value)s” is not a currency code, as in “EUR”"), value=currency)
    try:
        amount = parse_decimal(value.strip(), locale=locale)
    except NumberFormatError:
        raise Unreadable(_("“%(value)s” is not an amount, as in “14.50”"), value=value) from None
    return money.to_minor(amount, code)


def amount_written(minor: int, currency: str, locale: str) -> str:
    """``minor_units`` the other way: the amount as the viewer's locale writes it."""
    major: Decimal = money.from_minor(minor, currency)
    return str(format_decimal(major, format="#,##0.00##", locale=locale))
