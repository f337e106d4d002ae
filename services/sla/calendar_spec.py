"""Calendar specs: checking what ``BusinessCalendar.from_spec`` is given, naming the
field at fault (a JSON pointer), and normalising it for storage."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from services.core.jsonpointer import from_path

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Hours = tuple[tuple[int, int], ...]  # (start, end) minutes from the start date's midnight, end <= 2880
_DASH = "\u2013"  # en dash, between the two ends of an interval in messages
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TOP_KEYS = {"timezone", "weekly", "holidays", "closures", "openings"}


class CalendarSpecError(ValueError):
    """A calendar spec is invalid: ``field`` points (RFC 6901) at the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[CalendarSpecError], tuple[str, str]]:
        return type(self), (self.field, self.message)


@dataclass(frozen=True)
class ParsedSpec:
    zone: ZoneInfo
    weekly: tuple[Hours, ...]  # mon..sun
    country: str | None
    subdivision: str | None
    closures: tuple[tuple[date, date], ...]
    openings: tuple[tuple[date, date, Hours], ...]
    normalised: dict[str, Any]


def parse(spec: object) -> ParsedSpec:
    if not isinstance(spec, dict):
        raise CalendarSpecError("", "a calendar spec must be an object")
    for key in spec:
        if key not in _TOP_KEYS:
            raise CalendarSpecError(
                from_path([key]), f"unknown key (expected {', '.join(sorted(_TOP_KEYS))})"
            )
    zone = _zone(spec.get("timezone"))
    weekly_spec = {} if spec.get("weekly") is None else spec["weekly"]
    if not isinstance(weekly_spec, dict):
        raise CalendarSpecError("/weekly", "must be an object of weekdays (mon..sun)")
    for key in weekly_spec:
        if key not in DAYS:
            raise CalendarSpecError(from_path(["weekly", key]), "unknown weekday (expected mon..sun)")
    weekly = tuple(_hours(weekly_spec.get(day, []), ["weekly", day]) for day in DAYS)
    _check_overnight(weekly)
    country, subdivision = _holidays(spec.get("holidays"))
    closures = tuple(_closure(value, i) for i, value in enumerate(_list(spec.get("closures"), "closures")))
    openings = tuple(_opening(value, i) for i, value in enumerate(_list(spec.get("openings"), "openings")))
    for i, (first, last, _) in enumerate(openings):
        for j, (other_first, other_last, _other) in enumerate(openings[:i]):
            if first <= other_last and other_first <= last:
                raise CalendarSpecError(f"/openings/{i}", f"its dates overlap /openings/{j}")
    if not any(weekly) and not any(hours for _f, _t, hours in openings):
        raise CalendarSpecError("/weekly", "the calendar is never open (no weekly hours and no openings)")
    normalised = {
        "timezone": zone.key,
        "weekly": {day: [list(pair) for pair in weekly_spec.get(day, [])] for day in DAYS},
        "holidays": None if country is None else {"country": country, "subdivision": subdivision},
        "closures": [[f.isoformat(), t.isoformat()] for f, t in closures],
        "openings": [
            {
                "from": f.isoformat(),
                "to": t.isoformat(),
                "hours": [list(p) for p in spec["openings"][i]["hours"]],
            }
            for i, (f, t, _h) in enumerate(openings)
        ],
    }
    return ParsedSpec(zone, weekly, country, subdivision, closures, openings, normalised)


def _zone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise CalendarSpecError("/timezone", "required: an IANA time zone such as Europe/Paris")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarSpecError("/timezone", f"unknown time zone {value!r}") from None


def _list(value: object, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CalendarSpecError(f"/{key}", "must be a list")
    return value


def _minutes(value: object, field: str, what: str, *, end: bool) -> int:
    if not isinstance(value, str) or not _TIME.fullmatch(value) or (value == "24:00" and not end):
        allowed = "HH:MM, 00:00 to 24:00" if end else "HH:MM, 00:00 to 23:59"
        raise CalendarSpecError(field, f"{what} {value!r} is not a time ({allowed})")
    return int(value[:2]) * 60 + int(value[3:])


def _clock(minutes: int) -> str:
    return "24:00" if minutes == 1440 else f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def _hours(value: object, path: list[str | int]) -> Hours:
    """One date's intervals, checked: well-formed, not empty, no two overlapping."""
    if not isinstance(value, list):
        raise CalendarSpecError(from_path(path), 'must be a list of ["HH:MM", "HH:MM"] intervals')
    hours: list[tuple[int, int]] = []
    for i, pair in enumerate(value):
        field = from_path([*path, i])
        if not isinstance(pair, list) or len(pair) != 2:
            raise CalendarSpecError(field, 'must be a ["HH:MM", "HH:MM"] pair')
        start = _minutes(pair[0], field, "start", end=False)
        end = _minutes(pair[1], field, "end", end=True)
        if end == start:
            raise CalendarSpecError(
                field, f"ends when it starts ({pair[0]}); use 00:00 to 24:00 for a whole day"
            )
        if end < start:
            end += 1440  # over midnight
        for other_start, other_end in hours:
            if start < other_end and other_start < end:
                raise CalendarSpecError(field, f"overlaps {_clock(other_start)}{_DASH}{_clock(other_end)}")
        hours.append((start, end))
    return tuple(hours)


def _check_overnight(weekly: tuple[Hours, ...]) -> None:
    """An interval over midnight must end before the next day's intervals start."""
    for day, hours in enumerate(weekly):
        following = (day + 1) % 7
        for i, (start, end) in enumerate(hours):
            for next_start, next_end in weekly[following]:
                if next_start < end - 1440:
                    raise CalendarSpecError(
                        from_path(["weekly", DAYS[day], i]),
                        f"{_clock(start)}{_DASH}{_clock(end)} overlaps {DAYS[following]} "
                        f"{_clock(next_start)}{_DASH}{_clock(next_end)}",
                    )


def _holidays(value: object) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise CalendarSpecError("/holidays", 'must be null or {"country": ..., "subdivision": ...}')
    for key in value:
        if key not in ("country", "subdivision"):
            raise CalendarSpecError(
                from_path(["holidays", key]), "unknown key (expected country, subdivision)"
            )
    country, subdivision = value.get("country"), value.get("subdivision")
    if not isinstance(country, str) or not country:
        raise CalendarSpecError("/holidays/country", "required: an ISO 3166 country code such as FR")
    country = country.upper()
    try:
        holidays.country_holidays(country)
    except NotImplementedError:
        raise CalendarSpecError("/holidays/country", f"no public holidays known for {country!r}") from None
    if subdivision is not None:
        if not isinstance(subdivision, str):
            raise CalendarSpecError("/holidays/subdivision", "must be a subdivision code or null")
        try:
            holidays.country_holidays(country, subdiv=subdivision)
        except NotImplementedError:
            raise CalendarSpecError(
                "/holidays/subdivision", f"{country} has no subdivision {subdivision!r}"
            ) from None
    return country, subdivision


def _date(value: object, field: str, what: str) -> date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarSpecError(field, f"{what} {value!r} is not a date (YYYY-MM-DD)")


def _date_range(first: object, last: object, field: str) -> tuple[date, date]:
    start, end = _date(first, field, "from"), _date(last, field, "to")
    if start > end:
        raise CalendarSpecError(field, f"from {start} is after to {end}")
    return start, end


def _closure(value: object, i: int) -> tuple[date, date]:
    field = f"/closures/{i}"
    if not isinstance(value, list) or len(value) != 2:
        raise CalendarSpecError(field, 'must be a ["YYYY-MM-DD", "YYYY-MM-DD"] pair (inclusive)')
    return _date_range(value[0], value[1], field)


def _opening(value: object, i: int) -> tuple[date, date, Hours]:
    field = f"/openings/{i}"
    if not isinstance(value, dict) or set(value) != {"from", "to", "hours"}:
        raise CalendarSpecError(field, 'must be {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD", "hours": [...]}')
    for key in ("from", "to"):
        _date(value[key], f"{field}/{key}", key)
    first, last = _date_range(value["from"], value["to"], field)
    return first, last, _hours(value["hours"], ["openings", i, "hours"])
