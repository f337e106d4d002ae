"""Checking what a team or an agent declares: languages with CEFR levels, skills 1-5, a
staffing calendar that opens, a country, a zone, a currency. Each fault names its field."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from babel.numbers import list_currencies

from services.core.errors import FieldError, ValidationFailed
from services.sla.definitions import checked_spec
from services.work import language, residency


def languages(
    entries: list[dict[str, Any]] | None, pointer: str, errors: list[FieldError]
) -> list[dict[str, str]] | None:
    if entries is None:
        return None
    checked = []
    for index, entry in enumerate(entries):
        code = language.normalize(entry["code"])
        if code is None:
            errors.append(
                FieldError(f"{pointer}/{index}/code", f"{entry['code']} is not a BCP 47 language tag")
            )
            continue
        checked.append({"code": code, "level": str(entry["level"])})
    return checked


def skills(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if entries is None else [{"name": e["name"], "level": int(e["level"])} for e in entries]


def calendar(spec: dict[str, Any] | None, pointer: str, errors: list[FieldError]) -> dict[str, Any] | None:
    """A staffing calendar that is open some time ahead (one never open is refused)."""
    if spec is None:
        return None
    try:
        return checked_spec(spec, pointer)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
        return None


def place(country: str | None, timezone: str | None, errors: list[FieldError]) -> None:
    if country is not None and (
        len(country) != 2 or residency.unknown_codes([country]) or country in residency.REGIONS
    ):
        errors.append(FieldError("/country", f"{country} is not an ISO 3166-1 alpha-2 country code"))
    if timezone is not None and timezone not in available_timezones():
        errors.append(FieldError("/timezone", f"{timezone} is not an IANA time zone"))


def currency(code: str, pointer: str, errors: list[FieldError]) -> None:
    if code not in list_currencies():
        errors.append(FieldError(pointer, f"{code} is not an ISO 4217 currency"))


def capacity(entries: dict[str, int] | None, errors: list[FieldError]) -> dict[str, int] | None:
    if entries is None:
        return None
    for kind, count in entries.items():
        if count < 0 or count > 100:
            errors.append(FieldError(f"/capacity/{kind}", "between 0 and 100 open tasks"))
    return dict(entries)


def raise_if(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed(errors=errors)
