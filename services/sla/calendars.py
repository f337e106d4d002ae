"""Business calendars: pure, fast business-time arithmetic.

A calendar is a zone, weekly hours, a country's public holidays, closures and
openings (the spec ``BusinessCalendar.from_spec`` validates and ``.spec`` gives
back normalised). The rules:

- ``weekly`` maps ``mon``..``sun`` to ``[start, end]`` wall-clock pairs
  ("HH:MM") in the calendar's zone. ``end`` may be "24:00"; ``end < start``
  crosses midnight (22:00-06:00 ends the next day); ``end == start`` is an error.
  An interval belongs to the date it starts on: a holiday or closure of that date
  removes all of it, the part after midnight included.
- ``holidays`` (a ``holidays`` country and subdivision) and ``closures``
  (inclusive date ranges) close whole dates. ``openings`` replace the hours of
  each date of their inclusive range, holidays and closures included. Where an
  opening's overnight interval meets the next date's hours, their union is open.
- An instant is open iff the wall clock shown in the zone at that instant lies in
  an open interval. So across DST a 01:00-04:00 interval is 2 real hours on
  spring-forward day and 4 on fall-back day, whose repeated wall times count twice.
  Business time is the real time elapsed while open.
- ``add(start, d)`` is the earliest instant by which ``d`` of business time has
  elapsed since ``start`` (so the end of an interval, never the next opening);
  ``add(start, 0)`` is ``start``. ``between(a, b)`` is the business time in
  [a, b). Answers are aware UTC; naive inputs and negative durations are errors.
- Searching forward gives up with ``ValueError`` after ``HORIZON_YEARS`` years
  in a row without open time (at once past the last opening of a calendar
  without weekly hours), and outside the years 2-9998.

How: per UTC calendar year, lazily, the open time as sorted, merged UTC
microsecond intervals with prefix sums, so each question is a bisection. Wall
intervals become UTC through the zone's offsets between its transitions, found
from ``zoneinfo``. Instances never change once built (the per-year caches only
memoise) and may be shared.
"""

from __future__ import annotations

import copy
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from services.core.time import ensure_aware
from services.sla.calendar_spec import DAYS, CalendarSpecError, Hours, parse

__all__ = ["DAYS", "BusinessCalendar", "CalendarSpecError"]

HORIZON_YEARS = 10
FIRST_YEAR, LAST_YEAR = 2, 9998

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MICRO = timedelta(microseconds=1)
_SECOND = 1_000_000
_DAY = 86_400
_SAMPLE = 86_400  # in tzdata, no zone has changed its offset twice within 2 days since 1900
_MARGIN_DAYS = 3  # wall dates on either side of a year whose hours may fall in it

Year = tuple[list[int], list[int], list[int], list[int], int]  # starts, ends, used before, used after, total


class BusinessCalendar:
    """Business-time arithmetic of one calendar spec (see the module docstring)."""

    __slots__ = (
        "_closures",
        "_country",
        "_holiday_ordinals",
        "_last_open_year",
        "_openings",
        "_spec",
        "_subdivision",
        "_totals",
        "_weekly",
        "_year_bound",
        "_years",
        "_zone",
    )

    def __init__(
        self,
        zone: ZoneInfo,
        weekly: tuple[Hours, ...],
        country: str | None,
        subdivision: str | None,
        closures: tuple[tuple[date, date], ...],
        openings: tuple[tuple[date, date, Hours], ...],
        spec: dict[str, Any],
    ) -> None:
        self._zone = zone
        self._weekly = weekly
        self._country = country
        self._subdivision = subdivision
        self._closures = closures
        self._openings = openings
        self._spec = spec
        self._years: dict[int, Year] = {}
        self._totals: dict[int, int] = {}
        self._holiday_ordinals: dict[int, frozenset[int]] = {}
        weekly_minutes = sum(e - s for day in weekly for s, e in day)
        # No year holds more: 53 weeks, plus a day for each of up to 4 offset changes repeating wall time.
        self._year_bound = (53 * weekly_minutes * 60 + 4 * _DAY) * _SECOND if weekly_minutes else 0
        self._last_open_year = (
            None if weekly_minutes else max((to.year + 1 for _f, to, _h in openings), default=0)
        )

    # ------------------------------------------------------------------ building

    @classmethod
    def from_spec(cls, spec: object) -> BusinessCalendar:
        """Check ``spec`` (``CalendarSpecError`` names the field at fault) and build."""
        p = parse(spec)
        return cls(p.zone, p.weekly, p.country, p.subdivision, p.closures, p.openings, p.normalised)

    @property
    def spec(self) -> dict[str, Any]:
        """The normalised spec, as ``from_spec`` takes it (a copy: store it freely)."""
        return copy.deepcopy(self._spec)

    def __repr__(self) -> str:
        return f"BusinessCalendar({self._spec!r})"

    # ------------------------------------------------------------------ questions

    def is_open(self, at: datetime) -> bool:
        moment = ensure_aware(at)
        t = (moment - _EPOCH) // _MICRO
        starts, ends, _before, _after, _total = self._years.get(moment.year) or self._year(moment.year)
        i = bisect_right(starts, t) - 1
        return i >= 0 and t < ends[i]

    def next_open(self, at: datetime) -> datetime:
        moment = ensure_aware(at)
        t = (moment - _EPOCH) // _MICRO
        year = moment.year
        starts, ends, _before, _after, _total = self._years.get(year) or self._year(year)
        i = bisect_right(starts, t) - 1
        if i >= 0 and t < ends[i]:
            return moment
        if i + 1 < len(starts):
            return _EPOCH + timedelta(microseconds=starts[i + 1])
        for later in self._years_after(year, moment):
            if self._total(later):
                return _EPOCH + timedelta(microseconds=self._year(later)[0][0])
        raise AssertionError("unreachable: _years_after raises first")

    def between(self, a: datetime, b: datetime) -> timedelta:
        start, end = ensure_aware(a), ensure_aware(b)
        if end <= start:
            return timedelta(0)
        t0, t1 = (start - _EPOCH) // _MICRO, (end - _EPOCH) // _MICRO
        y0, y1 = start.year, end.year
        if y0 == y1:
            return timedelta(microseconds=self._used(y0, t1) - self._used(y0, t0))
        used = self._total(y0) - self._used(y0, t0) + self._used(y1, t1)
        used += sum(self._total(year) for year in range(y0 + 1, y1))
        return timedelta(microseconds=used)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        moment = ensure_aware(start)
        wanted = duration // _MICRO
        if wanted <= 0:
            if wanted < 0:
                raise ValueError(f"a duration to add must not be negative: {duration}")
            return moment
        t = (moment - _EPOCH) // _MICRO
        year = moment.year
        starts, ends, before, after, total = self._years.get(year) or self._year(year)
        i = bisect_right(starts, t) - 1
        target = wanted if i < 0 else wanted + before[i] + min(t, ends[i]) - starts[i]
        if target <= total:
            j = bisect_left(after, target)
            return _EPOCH + timedelta(microseconds=starts[j] + target - before[j])
        left = target - total
        if self._year_bound and left > self._year_bound * (LAST_YEAR - year):
            raise ValueError(f"adding {duration} of business time goes beyond the year {LAST_YEAR}")
        for later in self._years_after(year, moment):
            total = self._total(later)
            if left <= total:
                starts, _ends, before, after, _total = self._year(later)
                j = bisect_left(after, left)
                return _EPOCH + timedelta(microseconds=starts[j] + left - before[j])
            left -= total
        raise AssertionError("unreachable: _years_after raises first")

    # ------------------------------------------------------------------ years

    def _used(self, year: int, t: int) -> int:
        """Business microseconds of ``year`` (UTC) before the instant ``t``."""
        starts, ends, before, _after, _total = self._years.get(year) or self._year(year)
        i = bisect_right(starts, t) - 1
        return 0 if i < 0 else before[i] + min(t, ends[i]) - starts[i]

    def _years_after(self, year: int, since: datetime) -> Iterator[int]:
        """The years after ``year``, ending in ValueError where the search must give up."""
        dry = 0
        while True:
            year += 1
            if self._last_open_year is not None and year > self._last_open_year:
                raise ValueError(f"no open time after {since.isoformat()}: the calendar has no weekly hours")
            if dry >= HORIZON_YEARS or year > LAST_YEAR:
                raise ValueError(f"no open time within {HORIZON_YEARS} years after {since.isoformat()}")
            yield year
            dry = 0 if self._total(year) else dry + 1

    def _total(self, year: int) -> int:
        total = self._totals.get(year)
        if total is None:
            if self._last_open_year is not None and year > self._last_open_year:
                return 0
            total = self._year(year)[4]
        return total

    def _year(self, year: int) -> Year:
        """The open time of one UTC calendar year, materialised (and cached if not too far out)."""
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise ValueError(f"business time is computed for the years {FIRST_YEAR} to {LAST_YEAR} only")
        cached = self._years.get(year)
        if cached is not None:
            return cached
        low, high = _year_start(year), _year_start(year + 1)
        segments = _offset_segments(self._zone, low - _MARGIN_DAYS * _DAY, high + _MARGIN_DAYS * _DAY)
        pieces: list[tuple[int, int]] = []
        first = date(year, 1, 1).toordinal() - _MARGIN_DAYS
        for ordinal in range(first, date(year, 12, 31).toordinal() + _MARGIN_DAYS + 1):
            midnight = (ordinal - _EPOCH_ORDINAL) * _DAY  # the wall clock's midnight, as if it were UTC
            for start, end in self._hours_on(ordinal):
                wall_start, wall_end = midnight + start * 60, midnight + end * 60
                for seg_start, seg_end, offset in segments:
                    a = max(wall_start - offset, seg_start, low)
                    b = min(wall_end - offset, seg_end, high)
                    if a < b:
                        pieces.append((a, b))
        pieces.sort()
        starts: list[int] = []
        ends: list[int] = []
        for a, b in pieces:
            if ends and a <= ends[-1]:
                ends[-1] = max(ends[-1], b)
            else:
                starts.append(a)
                ends.append(b)
        starts = [s * _SECOND for s in starts]
        ends = [e * _SECOND for e in ends]
        before: list[int] = []
        after: list[int] = []
        used = 0
        for s, e in zip(starts, ends, strict=True):
            before.append(used)
            used += e - s
            after.append(used)
        materialised: Year = (starts, ends, before, after, used)
        self._totals[year] = used
        if len(self._years) < 64:  # enough for any clock; far searches only need the totals
            self._years[year] = materialised
        return materialised

    def _hours_on(self, ordinal: int) -> Hours:
        day = date.fromordinal(ordinal)
        for first, last, hours in self._openings:
            if first <= day <= last:
                return hours
        if any(first <= day <= last for first, last in self._closures):
            return ()
        if self._country is not None and ordinal in self._holidays_of(day.year):
            return ()
        return self._weekly[day.weekday()]

    def _holidays_of(self, year: int) -> frozenset[int]:
        ordinals = self._holiday_ordinals.get(year)
        if ordinals is None:
            assert self._country is not None
            found = holidays.country_holidays(self._country, subdiv=self._subdivision, years=year)
            ordinals = self._holiday_ordinals[year] = frozenset(d.toordinal() for d in found)
        return ordinals


# ------------------------------------------------------------------ time zones


def _year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY


def _offset_at(zone: ZoneInfo, t: int) -> int:
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    assert offset is not None
    return offset // timedelta(seconds=1)


def _offset_segments(zone: ZoneInfo, low: int, high: int) -> list[tuple[int, int, int]]:
    """(from, to, UTC offset) in seconds covering [low, high), split at the zone's transitions."""
    segments: list[tuple[int, int, int]] = []
    seg_start, offset = low, _offset_at(zone, low)
    t = low
    while t < high:
        step = min(t + _SAMPLE, high)
        if _offset_at(zone, step) != offset:
            before, after = t, step  # offset(before) == offset != offset(after): bisect to the second
            while after - before > 1:
                middle = (before + after) // 2
                if _offset_at(zone, middle) == offset:
                    before = middle
                else:
                    after = middle
            segments.append((seg_start, after, offset))
            seg_start, offset = after, _offset_at(zone, after)
            t = after
        else:
            t = step
    segments.append((seg_start, high, offset))
    return segments


# ------------------------------------------------------------------ validation
