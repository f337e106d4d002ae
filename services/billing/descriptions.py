"""What an invoice line says, in the invoice's language.

Lines store facts (kind, metric, task kind, version, percent...); the words are made
when the invoice is read or rendered, so the same invoice reads in French for the
client and in English for an account manager who asks so, from one catalog.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel.numbers import format_decimal

from services.billing.models import LineKind
from services.core.i18n import _, gettext

TASK_KINDS = {
    "support_ticket": _("Support tickets"),
    "claim": _("Claims"),
    "contract_documents": _("Contract documents"),
    "data_analysis": _("Data analysis"),
    "file_management": _("File management"),
    "invoice_processing": _("Invoice processing"),
    "order_processing": _("Order processing"),
    "payroll_hr": _("Payroll and HR"),
    "vat_declaration": _("VAT declarations"),
}
METRICS = {
    "task_completed": _("Tasks completed"),
    "handle_minutes": _("Handle time (minutes)"),
    "sla_met": _("SLA targets met"),
    "sla_breached": _("SLA targets breached"),
}
SLA_METRICS = {
    "first_response": _("first response"),
    "resolution": _("resolution"),
    "next_update": _("next update"),
}


def describe(locale: str, kind: LineKind, metric: str | None, details: dict[str, Any]) -> str:
    text = _what(locale, kind, metric, details)
    if "version" in details:
        text += gettext(
            locale,
            _(" (contract version %(version)s, %(start)s to %(end)s)"),
            version=details["version"],
            start=details["from"],
            end=details["to"],
        )
    return text


def _what(locale: str, kind: LineKind, metric: str | None, details: dict[str, Any]) -> str:
    if kind is LineKind.USAGE:
        return _usage(locale, metric, details.get("task_kind"))
    if kind is LineKind.SURCHARGE:
        if details["when"] == "out_of_hours":
            return gettext(
                locale,
                _("Out-of-hours surcharge (%(percent)s %%)"),
                percent=_number(locale, details["percent"]),
            )
        return gettext(
            locale,
            _("Language surcharge, %(languages)s (%(percent)s %%)"),
            languages=", ".join(code.upper() for code in details["languages"]),
            percent=_number(locale, details["percent"]),
        )
    if kind is LineKind.MINIMUM:
        return gettext(locale, _("Top-up to the monthly minimum commitment"))
    if kind is LineKind.MANUAL:
        return str(details.get("reason") or gettext(locale, _("Additional work")))
    if kind is LineKind.ADJUSTMENT:
        return gettext(
            locale,
            _("Adjustment for %(period)s: %(what)s"),
            period=details["period"],
            what=details.get("reason") or _usage(locale, metric, details.get("task_kind")),
        )
    return gettext(
        locale,
        _("SLA service credit: %(metric)s attained %(attainment)s %% (credit %(percent)s %%)"),
        metric=gettext(locale, SLA_METRICS.get(details["sla_metric"], details["sla_metric"])),
        attainment=_number(locale, details["attainment"]),
        percent=_number(locale, details["percent"]),
    )


def _number(locale: str, value: str) -> str:
    return format_decimal(Decimal(value), format="#,##0.##", locale=locale)


def _usage(locale: str, metric: str | None, task_kind: str | None) -> str:
    what = gettext(locale, METRICS[metric]) if metric in METRICS else str(metric)
    if task_kind:
        kind = gettext(locale, TASK_KINDS[task_kind]) if task_kind in TASK_KINDS else task_kind
        return gettext(locale, _("%(what)s: %(kind)s"), what=what, kind=kind)
    return what
