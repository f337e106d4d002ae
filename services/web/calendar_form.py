"""A staffing calendar as a weekly grid on a form, and back: the SLA engine's spec
(``sla.calendar_spec``) without JSON for a team lead.

Each weekday's hours are typed as they read, "08:00-12:00, 13:00-17:00" (empty: closed;
"22:00-06:00" runs into the next day, a night shift); public holidays as a country code
with an optional subdivision ("RO", "DE-BY"); leave days and closures as dates or ranges
("2026-12-24, 2026-12-28..2027-01-02"). Special openings (a Saturday worked) are rare
and stay the spec's JSON list, in a field of their own. The spec built is checked by the
services as any other (a calendar never open is refused there, with its pointer).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import Form

from services.core.i18n import _
from services.sla.calendar_spec import DAYS
from services.web.form_text import Unreadable, parts

_RANGE = re.compile(r"(\d\d:\d\d)\s*[-\u2013]\s*(\d\d:\d\d)")  # hyphen or en dash
_DATES = re.compile(r"(\d{4}-\d\d-\d\d)(?:\s*\.\.\s*(\d{4}-\d\d-\d\d))?")
_HOLIDAYS = re.compile(r"([A-Za-z]{2})(?:[-\s]+([A-Za-z0-9]{1,3}))?")
FIELDS = ("timezone", *DAYS, "holidays", "closures", "openings")


def calendar_fields(
    calendar_timezone: Annotated[str, Form(max_length=64)] = "",
    calendar_mon: Annotated[str, Form(max_length=200)] = "",
    calendar_tue: Annotated[str, Form(max_length=200)] = "",
    calendar_wed: Annotated[str, Form(max_length=200)] = "",
    calendar_thu: Annotated[str, Form(max_length=200)] = "",
    calendar_fri: Annotated[str, Form(max_length=200)] = "",
    calendar_sat: Annotated[str, Form(max_length=200)] = "",
    calendar_sun: Annotated[str, Form(max_length=200)] = "",
    calendar_holidays: Annotated[str, Form(max_length=16)] = "",
    calendar_closures: Annotated[str, Form(max_length=4000)] = "",
    calendar_openings: Annotated[str, Form(max_length=20_000)] = "",
) -> dict[str, str]:
    """The grid's fields as typed (a dependency of the pages that post it)."""
    typed = locals()
    return {name: typed[f"calendar_{name}"] for name in FIELDS}


def typed_from(spec: dict[str, Any] | None) -> dict[str, str]:
    """A stored spec as the grid shows it."""
    if not spec:
        return dict.fromkeys(FIELDS, "")
    weekly = spec.get("weekly") or {}
    holidays = spec.get("holidays") or {}
    typed = {
        "timezone": spec.get("timezone", ""),
        **{day: ", ".join(f"{start}-{end}" for start, end in weekly.get(day, [])) for day in DAYS},
        "holidays": "-".join(filter(None, (holidays.get("country"), holidays.get("subdivision")))),
        "closures": ", ".join(
            first if first == last else f"{first}..{last}" for first, last in spec.get("closures") or []
        ),
        "openings": orjson.dumps(spec["openings"]).decode() if spec.get("openings") else "",
    }
    return typed


def spec_from(typed: dict[str, str]) -> dict[str, Any] | None:
    """The spec the grid says; None if every field is empty (an agent then works the
    team's calendar)."""
    if not any(value.strip() for value in typed.values()):
        return None
    spec: dict[str, Any] = {
        "timezone": typed["timezone"].strip(),
        "weekly": {day: _hours(typed[day]) for day in DAYS if typed[day].strip()},
    }
    if typed["holidays"].strip():
        found = _HOLIDAYS.fullmatch(typed["holidays"].strip())
        if found is None:
            raise Unreadable(
                _("Public holidays: “%(value)s” is not a country code, as in “RO” or “DE-BY”"),
                value=typed["holidays"],
            )
        spec["holidays"] = {"country": found.group(1).upper(), "subdivision": found.group(2)}
    if typed["closures"].strip():
        spec["closures"] = [_dates(part) for part in parts(typed["closures"])]
    if typed["openings"].strip():
        try:
            spec["openings"] = orjson.loads(typed["openings"])
        except orjson.JSONDecodeError as exc:
            raise Unreadable(_("Special openings are not valid JSON: %(fault)s"), fault=str(exc)) from exc
    return spec


def _hours(text: str) -> list[list[str]]:
    found = []
    for part in parts(text):
        interval = _RANGE.fullmatch(part)
        if interval is None:
            raise Unreadable(_("“%(value)s” is not a time range, as in “08:00-17:00”"), value=part)
        found.append([interval.group(1), interval.group(2)])
    return found


def _dates(part: str) -> list[str]:
    found = _DATES.fullmatch(part)
    if found is None:
        raise Unreadable(
            _("“%(value)s” is not a date or a range of dates, as in “2026-12-24..2026-12-26”"), value=part
        )
    return [found.group(1), found.group(2) or found.group(1)]
