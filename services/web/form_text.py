"""What people type in a form's text fields, read: lists of "name value" entries ("fr C1,
en B2", one a line or separated by commas), whole numbers and amounts of money (as the
viewer's locale writes them: "14,50" in Bucharest). What cannot be read is
``Unreadable``, said in the viewer's language over the form."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from babel.numbers import NumberFormatError, format_decimal, get_group_symbol, parse_decimal

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
    typed = value.strip()
    group = get_group_symbol(locale)
    if group.isspace():  # French groups with a narrow no-break space; people type a space
        typed = _SPACES.sub(group, typed)
    try:  # strict: "14.50" typed in Bucharest is refused, not read as 1450
        amount = parse_decimal(typed, locale=locale, strict=True)
        if not _PLAIN_AMOUNT.fullmatch(typed) or amount > _LARGEST:  # no "1e20", no sign
            raise NumberFormatError(typed)
        return money.to_minor(amount, code)
    except (NumberFormatError, ArithmeticError):
        raise Unreadable(_("“%(value)s” is not an amount, as in “14.50”"), value=value) from None


_PLAIN_AMOUNT = re.compile(r"[\d\s.,'\u00a0\u202f\u2019]+")  # digits and the separators locales use
_SPACES = re.compile(r"[ \u00a0\u202f]")
_LARGEST = Decimal(10) ** 12


def amount_written(minor: int, currency: str, locale: str) -> str:
    """``minor_units`` the other way: the amount as the viewer's locale writes it."""
    major: Decimal = money.from_minor(minor, currency)
    return str(format_decimal(major, format="#,##0.00##", locale=locale))
