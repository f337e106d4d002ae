"""Business calendars agree, to the second, with a brute-force reading of the wall-clock rule.

The oracle knows nothing of the implementation: it asks ``zoneinfo`` for the
wall clock at each instant and looks the time up in the spec's hours of that
date and of the day before (for overnight intervals). Interval bounds and the
zones' offsets (2026-2027) are whole minutes and transitions happen on whole
UTC minutes, so open or closed is constant within each UTC minute: sums step
minute by minute, counting the partial seconds at both ends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.sla.calendars import BusinessCalendar

ZONES = [
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Europe/Bucharest",
]
HOLIDAYS = [
    None,
    {"country": "FR", "subdivision": None},
    {"country": "DE", "subdivision": "BY"},
    {"country": "PL"},
]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ANCHORS = [  # instants where things happen: DST transitions of 2026, holidays, the new year
    datetime(2026, 3, 8, 7, tzinfo=UTC),  # New York forward
    datetime(2026, 3, 29, 1, tzinfo=UTC),  # Europe forward
    datetime(2026, 4, 4, 15, tzinfo=UTC),  # Lord Howe back half an hour
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),  # Lord Howe forward half an hour
    datetime(2026, 10, 25, 1, tzinfo=UTC),  # Europe back
    datetime(2026, 11, 1, 6, tzinfo=UTC),  # New York back
    datetime(2026, 1, 6, 12, tzinfo=UTC),  # Epiphany (DE-BY, PL)
    datetime(2026, 5, 1, 12, tzinfo=UTC),  # Labour day
    datetime(2026, 8, 15, 12, tzinfo=UTC),  # a Saturday holiday (FR, DE-BY, PL)
    datetime(2026, 11, 1, 12, tzinfo=UTC),  # a Sunday holiday
    datetime(2027, 1, 1, tzinfo=UTC),  # the new year
]
FIRST, LAST = (
    int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()),
    int(datetime(2028, 1, 1, tzinfo=UTC).timestamp()),
)
DAY = 86_400
ADD_LIMIT_MINUTES = 21 * 1440  # the oracle gives up after 3 weeks of stepping


# ------------------------------------------------------------------ the oracle


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


@cache
def _holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


class WallClock:
    """Open or closed, read off the wall clock, straight from a spec."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.zone = ZoneInfo(spec["timezone"])
        self.weekly = [[(_minutes(s), _minutes(e)) for s, e in spec["weekly"].get(day, [])] for day in DAYS]
        self.holidays = spec.get("holidays")
        self.closures = [(date.fromisoformat(f), date.fromisoformat(t)) for f, t in spec.get("closures", [])]
        self.openings = [
            (
                date.fromisoformat(o["from"]),
                date.fromisoformat(o["to"]),
                [(_minutes(s), _minutes(e)) for s, e in o["hours"]],
            )
            for o in spec.get("openings", [])
        ]
        self.memo: dict[date, list[tuple[int, int]]] = {}

    def hours(self, day: date) -> list[tuple[int, int]]:
        for first, last, hours in self.openings:
            if first <= day <= last:
                return hours
        if any(first <= day <= last for first, last in self.closures):
            return []
        if self.holidays and day in _holiday_dates(
            self.holidays["country"], self.holidays.get("subdivision"), day.year
        ):
            return []
        return self.weekly[day.weekday()]

    def open_seconds(self, day: date) -> list[tuple[int, int]]:
        """The open wall-clock seconds of a date: its intervals up to midnight, and the
        overnight intervals of the day before from midnight."""
        spans = self.memo.get(day)
        if spans is None:
            own = [(start * 60, (end if end > start else 1440) * 60) for start, end in self.hours(day)]
            eve = [(0, end * 60) for start, end in self.hours(day - timedelta(days=1)) if end < start]
            spans = self.memo[day] = own + eve
        return spans

    def is_open(self, t: int) -> bool:
        wall = datetime.fromtimestamp(t, self.zone)
        second = wall.hour * 3600 + wall.minute * 60 + wall.second
        return any(start <= second < end for start, end in self.open_seconds(wall.date()))

    def between(self, a: int, b: int) -> int:
        total, minute = 0, a - a % 60
        while minute < b:
            overlap = min(b, minute + 60) - max(a, minute)
            if overlap > 0 and self.is_open(minute):
                total += overlap
            minute += 60
        return total

    def add(self, a: int, seconds: int) -> int | None:
        used, minute = 0, a - a % 60
        for _ in range(ADD_LIMIT_MINUTES):
            since = max(a, minute)
            if self.is_open(minute):
                if used + minute + 60 - since >= seconds:
                    return since + seconds - used
                used += minute + 60 - since
            minute += 60
        return None

    def next_open(self, t: int) -> int | None:
        if self.is_open(t):
            return t
        minute = t - t % 60 + 60
        for _ in range(ADD_LIMIT_MINUTES):
            if self.is_open(minute):
                return minute
            minute += 60
        return None


# ------------------------------------------------------------------ random calendars and instants


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


points = st.one_of(st.integers(0, 96).map(lambda quarter: quarter * 15), st.integers(0, 1440))
day_points = st.lists(points, max_size=4, unique=True).map(lambda p: sorted(p)[: len(p) // 2 * 2])


@st.composite
def day_hours(draw: st.DrawFn, next_day_first: int) -> list[list[str]]:
    """One day's intervals; the last may run over midnight, up to the next day's first start."""
    p = draw(day_points)
    pairs = [[p[i], p[i + 1]] for i in range(0, len(p), 2)]
    if pairs and pairs[-1][0] > 0 and draw(st.booleans()):
        pairs[-1][1] = draw(st.integers(0, min(pairs[-1][0] - 1, next_day_first)))
    return [[_clock(start), _clock(end)] for start, end in pairs]


@st.composite
def calendars(draw: st.DrawFn) -> dict[str, Any]:
    same_day = [draw(day_points) for _ in DAYS]
    weekly: dict[str, list[list[str]]] = {}
    for i, p in enumerate(same_day):
        pairs = [[p[k], p[k + 1]] for k in range(0, len(p), 2)]
        following = same_day[(i + 1) % 7]
        if pairs and pairs[-1][0] > 0 and draw(st.booleans()):
            limit = min(pairs[-1][0] - 1, following[0] if following else 1439)
            pairs[-1][1] = draw(st.integers(0, limit))
        if pairs:
            weekly[DAYS[i]] = [[_clock(start), _clock(end)] for start, end in pairs]
    near = st.builds(
        lambda anchor, shift: anchor.date() + timedelta(days=shift),
        st.sampled_from(ANCHORS),
        st.integers(-3, 3),
    )
    closures = draw(
        st.lists(st.tuples(near, st.integers(0, 3)), max_size=2).map(
            lambda c: [[f.isoformat(), (f + timedelta(days=n)).isoformat()] for f, n in c]
        )
    )
    openings = []
    if draw(st.booleans()):
        first, length = draw(near), draw(st.integers(0, 2))
        hours = draw(day_hours(1440))
        openings.append(
            {"from": first.isoformat(), "to": (first + timedelta(days=length)).isoformat(), "hours": hours}
        )
    assume(weekly or any(o["hours"] for o in openings))
    return {
        "timezone": draw(st.sampled_from(ZONES)),
        "weekly": weekly,
        "holidays": draw(st.sampled_from(HOLIDAYS)),
        "closures": closures,
        "openings": openings,
    }


instants = st.one_of(
    st.builds(
        lambda anchor, shift: int(anchor.timestamp()) + shift,
        st.sampled_from(ANCHORS),
        st.integers(-3 * DAY, 3 * DAY),
    ),
    st.integers(FIRST, LAST),
)


def _at(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _zoned(t: int, zone: str) -> datetime:
    return datetime.fromtimestamp(t, ZoneInfo(zone))


# ------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(calendars(), instants)
def test_is_open_follows_the_wall_clock(spec: dict[str, Any], t: int) -> None:
    assert BusinessCalendar.from_spec(spec).is_open(_at(t)) == WallClock(spec).is_open(t)


@settings(max_examples=120, deadline=None)
@given(calendars(), instants, st.integers(0, 4 * DAY))
def test_between_counts_the_open_seconds(spec: dict[str, Any], a: int, span: int) -> None:
    calendar = BusinessCalendar.from_spec(spec)
    got = calendar.between(_zoned(a, spec["timezone"]), _at(a + span))
    assert got == timedelta(seconds=WallClock(spec).between(a, a + span))


@settings(max_examples=100, deadline=None)
@given(calendars(), instants, st.integers(1, 2 * DAY))
def test_add_is_the_first_instant_with_that_much_open_time(
    spec: dict[str, Any], a: int, seconds: int
) -> None:
    calendar, oracle = BusinessCalendar.from_spec(spec), WallClock(spec)
    expected = oracle.add(a, seconds)
    if expected is not None:
        assert calendar.add(_zoned(a, spec["timezone"]), timedelta(seconds=seconds)) == _at(expected)
        return
    horizon = a - a % 60 + ADD_LIMIT_MINUTES * 60  # beyond the oracle's reach: check what it can
    assert oracle.between(a, horizon) < seconds
    try:
        assert calendar.add(_at(a), timedelta(seconds=seconds)) > _at(horizon)
    except ValueError:
        assert not spec["weekly"]  # only a calendar open through openings runs out of open time


@settings(max_examples=100, deadline=None)
@given(calendars(), instants)
def test_next_open_is_the_first_open_instant(spec: dict[str, Any], t: int) -> None:
    expected = WallClock(spec).next_open(t)
    assume(expected is not None)
    assert expected is not None
    assert BusinessCalendar.from_spec(spec).next_open(_at(t)) == _at(expected)


@settings(max_examples=120, deadline=None)
@given(calendars().filter(lambda spec: bool(spec["weekly"])), instants, st.integers(1, 10 * DAY))
def test_between_measures_exactly_what_add_added(spec: dict[str, Any], a: int, seconds: int) -> None:
    calendar, start, wanted = BusinessCalendar.from_spec(spec), _at(a), timedelta(seconds=seconds)
    due = calendar.add(start, wanted)
    assert calendar.between(start, due) == wanted
    assert calendar.between(start, due - timedelta(seconds=1)) < wanted
