"""An invoice as a document: HTML in the invoice's language and currency, and its PDF.

The same template makes both (WeasyPrint lays the HTML out as A4 pages); amounts,
dates and countries are formatted by Babel for the invoice's locale, and the words
come from the catalogs, so a French client's invoice reads in French with euros and a
Polish client's in Polish with złoty.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal

from services.billing.schemas import InvoiceOut
from services.billing.tax import REVERSE_CHARGE_ARTICLE
from services.core import i18n, money

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    extensions=["jinja2.ext.i18n"],
    autoescape=True,
)


def html(invoice: InvoiceOut, locale: str | None = None, base_url: str = "") -> str:
    """``base_url`` makes the links to the evidence absolute, for a PDF read offline."""
    locale = locale or invoice.locale
    translations = i18n.translations(locale)
    babel_locale = Locale.parse(locale)

    def gettext(message: str, **variables: Any) -> str:
        text = translations.gettext(message)
        return text % variables if variables else text

    def amount(minor: int) -> str:
        return money.format_money(minor, invoice.currency, locale)

    def day(value: Any) -> str:
        return format_date(value, format="long", locale=babel_locale) if value else "—"

    def country(code: str | None) -> str:
        return babel_locale.territories.get(code or "", code or "")

    zone = ZoneInfo(invoice.timezone)
    return TEMPLATES.get_template("invoice.html").render(
        invoice=invoice,
        first_day=invoice.period_start.astimezone(zone).date(),
        last_day=(invoice.period_end.astimezone(zone) - timedelta(days=1)).date(),
        locale=locale,
        _=gettext,
        amount=amount,
        day=day,
        country=country,
        article=REVERSE_CHARGE_ARTICLE,
        base_url=base_url.rstrip("/"),
        # Quantities are exact in the ledger; two decimals are what a reader needs.
        percent=lambda value: format_decimal(value, format="#,##0.####", locale=babel_locale),
        quantity=lambda value: format_decimal(value, format="#,##0.##", locale=babel_locale),
        unit_price=lambda value: money.format_unit_price(value, invoice.currency, locale),
    )


def pdf(invoice: InvoiceOut, locale: str | None = None, base_url: str = "") -> bytes:
    from weasyprint import HTML  # imported on use: it loads Pango, which the API may never need

    return bytes(HTML(string=html(invoice, locale, base_url)).write_pdf())
