"""Business calendars: worked examples of the wall-clock rules, and every way a spec is refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.sla.calendars import BusinessCalendar, CalendarSpecError

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _spec(**changes: Any) -> dict[str, Any]:
    """Paris, split shifts on weekdays, a Saturday night shift, French holidays, closed for Christmas."""
    spec: dict[str, Any] = {
        "timezone": "Europe/Paris",
        "weekly": {day: [["09:00", "12:00"], ["13:30", "18:00"]] for day in WEEKDAYS}
        | {"sat": [["22:00", "06:00"]]},
        "holidays": {"country": "FR", "subdivision": None},
        "closures": [["2026-12-24", "2026-12-26"]],
        "openings": [],
    }
    return spec | changes


PARIS_OFFICE = BusinessCalendar.from_spec(_spec())


def _paris(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=PARIS)


def _hours(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _refusal(spec: Any) -> CalendarSpecError:
    with pytest.raises(CalendarSpecError) as caught:
        BusinessCalendar.from_spec(spec)
    return caught.value


def _sundays(zone: str, hours: list[str]) -> BusinessCalendar:
    return BusinessCalendar.from_spec({"timezone": zone, "weekly": {"sun": [hours]}})


# ------------------------------------------------------------------ weekly hours


def test_a_split_shift_skips_the_lunch_break() -> None:
    assert PARIS_OFFICE.add(_paris(2026, 3, 2, 11), _hours(2)) == _paris(2026, 3, 2, 14, 30)


def test_add_ends_at_the_close_not_at_the_next_opening() -> None:
    assert PARIS_OFFICE.add(_paris(2026, 3, 2, 9), _hours(7.5)) == _paris(2026, 3, 2, 18)


def test_add_from_a_closed_instant_counts_from_the_next_opening() -> None:
    assert PARIS_OFFICE.add(_paris(2026, 3, 2, 12, 15), timedelta(minutes=30)) == _paris(2026, 3, 2, 14)


def test_a_week_holds_the_weekday_shifts_and_the_saturday_night() -> None:
    assert PARIS_OFFICE.between(_paris(2026, 3, 2), _paris(2026, 3, 9)) == _hours(5 * 7.5 + 8)


def test_the_saturday_night_shift_runs_into_sunday() -> None:
    assert PARIS_OFFICE.add(_paris(2026, 3, 7, 23), _hours(4)) == _paris(2026, 3, 8, 3)


def test_an_overnight_interval_ends_at_its_end_time_on_the_next_day() -> None:
    assert PARIS_OFFICE.is_open(_paris(2026, 3, 8, 5, 59))
    assert not PARIS_OFFICE.is_open(_paris(2026, 3, 8, 6))


def test_an_interval_is_open_at_its_start_and_closed_at_its_end() -> None:
    assert PARIS_OFFICE.is_open(_paris(2026, 3, 2, 9))
    assert not PARIS_OFFICE.is_open(_paris(2026, 3, 2, 12))
    assert not PARIS_OFFICE.is_open(_paris(2026, 3, 2, 8, 59, 59))


def test_an_interval_may_end_at_midnight() -> None:
    calendar = BusinessCalendar.from_spec({"timezone": "UTC", "weekly": {"mon": [["20:00", "24:00"]]}})
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    assert calendar.between(monday, monday + timedelta(days=7)) == _hours(4)
    assert calendar.add(monday, _hours(4)) == monday + _hours(24)


def test_a_whole_week_open_around_the_clock_counts_every_second() -> None:
    calendar = BusinessCalendar.from_spec(
        {"timezone": "UTC", "weekly": {d: [["00:00", "24:00"]] for d in WEEKDAYS}}
    )
    monday = datetime(2026, 3, 2, 7, 13, 5, tzinfo=UTC)
    assert calendar.add(monday, _hours(50)) == monday + _hours(50)


def test_add_keeps_microseconds() -> None:
    start = _paris(2026, 3, 2, 10, 0, 0, 250_000)
    assert PARIS_OFFICE.add(start, timedelta(seconds=1, microseconds=500_000)) == start + timedelta(
        seconds=1.5
    )


def test_between_is_zero_when_the_end_is_not_after_the_start() -> None:
    assert PARIS_OFFICE.between(_paris(2026, 3, 2, 11), _paris(2026, 3, 2, 10)) == timedelta(0)
    assert PARIS_OFFICE.between(_paris(2026, 3, 2, 11), _paris(2026, 3, 2, 11)) == timedelta(0)


def test_between_measures_what_add_added() -> None:
    start = _paris(2026, 6, 12, 16, 42, 17)
    due = PARIS_OFFICE.add(start, _hours(31.25))
    assert PARIS_OFFICE.between(start, due) == _hours(31.25)


def test_adding_nothing_gives_the_start_even_when_closed() -> None:
    start = _paris(2026, 3, 1, 12)
    assert PARIS_OFFICE.add(start, timedelta(0)) == start
    assert PARIS_OFFICE.add(start, timedelta(0)).tzinfo is UTC


# ------------------------------------------------------------------ holidays, closures, openings


def test_a_public_holiday_is_closed() -> None:
    assert not PARIS_OFFICE.is_open(_paris(2026, 5, 1, 10))
    assert PARIS_OFFICE.add(_paris(2026, 4, 30, 17), _hours(2)) == _paris(2026, 5, 2, 23)


def test_a_holiday_removes_its_overnight_interval_after_midnight_too() -> None:
    assert PARIS_OFFICE.is_open(_paris(2026, 8, 9, 2))  # an ordinary Saturday night
    assert not PARIS_OFFICE.is_open(_paris(2026, 8, 15, 23))  # Saturday 15 August, Assumption
    assert not PARIS_OFFICE.is_open(_paris(2026, 8, 16, 2))


def test_an_interval_starting_the_day_before_a_holiday_runs_into_it() -> None:
    assert PARIS_OFFICE.is_open(_paris(2026, 11, 1, 2))  # Sunday 1 November, from Saturday night


def test_holidays_of_a_subdivision_apply() -> None:
    bavaria = BusinessCalendar.from_spec(_spec(holidays={"country": "DE", "subdivision": "BY"}))
    berlin_rules = BusinessCalendar.from_spec(_spec(holidays={"country": "DE", "subdivision": "BE"}))
    epiphany = _paris(2026, 1, 6, 10)
    assert not bavaria.is_open(epiphany)
    assert berlin_rules.is_open(epiphany)


def test_a_calendar_without_holidays_is_open_on_them() -> None:
    assert BusinessCalendar.from_spec(_spec(holidays=None)).is_open(_paris(2026, 5, 1, 10))


def test_a_closure_closes_whole_days_including_their_night_shift() -> None:
    assert not PARIS_OFFICE.is_open(_paris(2026, 12, 24, 10))
    assert not PARIS_OFFICE.is_open(_paris(2026, 12, 27, 2))  # Saturday 26's night shift
    assert PARIS_OFFICE.next_open(_paris(2026, 12, 23, 18)) == _paris(2026, 12, 28, 9)


def test_an_opening_on_a_holiday_opens_its_hours_only() -> None:
    calendar = BusinessCalendar.from_spec(
        _spec(openings=[{"from": "2026-05-01", "to": "2026-05-01", "hours": [["10:00", "14:00"]]}])
    )
    assert calendar.is_open(_paris(2026, 5, 1, 11))
    assert not calendar.is_open(_paris(2026, 5, 1, 9, 30))
    assert calendar.between(_paris(2026, 5, 1), _paris(2026, 5, 2)) == _hours(4)


def test_an_opening_replaces_the_weekly_hours_of_each_date_in_its_range() -> None:
    calendar = BusinessCalendar.from_spec(
        _spec(openings=[{"from": "2026-03-02", "to": "2026-03-03", "hours": [["10:00", "11:00"]]}])
    )
    assert calendar.between(_paris(2026, 3, 2), _paris(2026, 3, 4)) == _hours(2)


def test_an_opening_opens_a_closure() -> None:
    calendar = BusinessCalendar.from_spec(
        _spec(openings=[{"from": "2026-12-24", "to": "2026-12-24", "hours": [["09:00", "12:00"]]}])
    )
    assert calendar.is_open(_paris(2026, 12, 24, 10))


def test_an_opening_without_hours_closes_its_dates() -> None:
    calendar = BusinessCalendar.from_spec(
        _spec(openings=[{"from": "2026-03-02", "to": "2026-03-02", "hours": []}])
    )
    assert not calendar.is_open(_paris(2026, 3, 2, 10))


def test_add_runs_across_the_new_year() -> None:
    assert PARIS_OFFICE.add(_paris(2026, 12, 31, 17), _hours(2)) == _paris(2027, 1, 2, 23)


# ------------------------------------------------------------------ daylight saving time


def test_on_spring_forward_day_an_interval_over_the_gap_is_shorter() -> None:
    calendar = _sundays("Europe/Paris", ["01:00", "04:00"])
    assert calendar.between(_paris(2026, 3, 29), _paris(2026, 3, 30)) == _hours(2)


def test_on_spring_forward_day_add_jumps_the_missing_hour() -> None:
    calendar = _sundays("Europe/Paris", ["01:00", "04:00"])
    assert calendar.add(_paris(2026, 3, 29), _hours(1.5)) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )  # 03:30 CEST


def test_on_fall_back_day_an_interval_over_the_repeat_is_longer() -> None:
    calendar = _sundays("Europe/Paris", ["01:00", "04:00"])
    assert calendar.between(_paris(2026, 10, 25), _paris(2026, 10, 26)) == _hours(4)


def test_on_fall_back_day_repeated_wall_times_are_open_on_both_passes() -> None:
    calendar = _sundays("Europe/Paris", ["00:00", "02:30"])
    assert calendar.is_open(datetime(2026, 10, 25, 0, 15, tzinfo=UTC))  # 02:15 CEST
    assert not calendar.is_open(datetime(2026, 10, 25, 0, 45, tzinfo=UTC))  # 02:45 CEST
    assert calendar.is_open(datetime(2026, 10, 25, 1, 15, tzinfo=UTC))  # 02:15 CET
    assert calendar.between(_paris(2026, 10, 25), _paris(2026, 10, 26)) == _hours(3)


def test_the_saturday_night_shift_is_an_hour_shorter_when_clocks_go_forward() -> None:
    assert PARIS_OFFICE.between(_paris(2026, 3, 28, 12), _paris(2026, 3, 29, 12)) == _hours(7)
    assert PARIS_OFFICE.add(_paris(2026, 3, 28, 21), _hours(6)) == _paris(2026, 3, 29, 5)


def test_the_saturday_night_shift_is_an_hour_longer_when_clocks_go_back() -> None:
    assert PARIS_OFFICE.between(_paris(2026, 10, 24, 12), _paris(2026, 10, 25, 12)) == _hours(9)


def test_kolkata_half_hour_offset_and_indian_holidays() -> None:
    kolkata = BusinessCalendar.from_spec(
        {
            "timezone": "Asia/Kolkata",
            "weekly": {day: [["09:30", "18:30"]] for day in WEEKDAYS},
            "holidays": {"country": "IN"},
        }
    )
    friday_evening = datetime(2026, 1, 23, 17, 30, tzinfo=ZoneInfo("Asia/Kolkata"))
    # Monday 26 January is Republic Day: an hour on Friday, an hour on Tuesday from 09:30 IST.
    assert kolkata.add(friday_evening, _hours(2)) == datetime(2026, 1, 27, 5, 0, tzinfo=UTC)


def test_lord_howe_half_hour_fall_back_repeats_half_an_hour() -> None:
    calendar = _sundays("Australia/Lord_Howe", ["01:00", "03:00"])
    zone = ZoneInfo("Australia/Lord_Howe")
    day = datetime(2026, 4, 5, tzinfo=zone)
    assert calendar.between(day, day + _hours(30)) == _hours(2.5)


def test_lord_howe_half_hour_spring_forward_skips_half_an_hour() -> None:
    calendar = _sundays("Australia/Lord_Howe", ["01:00", "03:00"])
    zone = ZoneInfo("Australia/Lord_Howe")
    day = datetime(2026, 10, 4, tzinfo=zone)
    assert calendar.between(day, day + _hours(30)) == _hours(1.5)


# ------------------------------------------------------------------ answers


def test_next_open_is_the_instant_itself_when_open() -> None:
    at = _paris(2026, 3, 2, 10, 20, 30)
    assert PARIS_OFFICE.next_open(at) == at
    assert PARIS_OFFICE.next_open(at).tzinfo is UTC


def test_next_open_is_the_next_opening_when_closed() -> None:
    assert PARIS_OFFICE.next_open(_paris(2026, 3, 2, 12)) == _paris(2026, 3, 2, 13, 30)
    assert PARIS_OFFICE.next_open(_paris(2026, 3, 6, 18)) == _paris(2026, 3, 7, 22)


def test_answers_are_aware_utc_whatever_the_input_zone() -> None:
    start = datetime(2026, 3, 2, 10, tzinfo=ZoneInfo("America/New_York"))
    for answer in (PARIS_OFFICE.add(start, _hours(3)), PARIS_OFFICE.next_open(start)):
        assert answer.tzinfo is UTC


@pytest.mark.parametrize("ask", ["add", "between_start", "between_end", "is_open", "next_open"])
def test_a_naive_datetime_is_refused(ask: str) -> None:
    naive, aware = datetime(2026, 3, 2, 10), _paris(2026, 3, 2, 10)
    questions = {
        "add": lambda: PARIS_OFFICE.add(naive, _hours(1)),
        "between_start": lambda: PARIS_OFFICE.between(naive, aware),
        "between_end": lambda: PARIS_OFFICE.between(aware, naive),
        "is_open": lambda: PARIS_OFFICE.is_open(naive),
        "next_open": lambda: PARIS_OFFICE.next_open(naive),
    }
    with pytest.raises(ValueError, match="naive"):
        questions[ask]()


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        PARIS_OFFICE.add(_paris(2026, 3, 2, 10), timedelta(seconds=-1))


# ------------------------------------------------------------------ searching far ahead


def test_add_searches_years_ahead_on_a_sparse_calendar() -> None:
    hour_a_week = BusinessCalendar.from_spec({"timezone": "UTC", "weekly": {"mon": [["09:00", "10:00"]]}})
    start = datetime(2026, 1, 5, tzinfo=UTC)
    due = hour_a_week.add(start, _hours(500))
    assert due == start + timedelta(weeks=499, hours=10)
    assert hour_a_week.between(start, due) == _hours(500)


def test_add_past_a_long_closure_answers_after_it() -> None:
    calendar = BusinessCalendar.from_spec(_spec(closures=[["2026-03-01", "2030-12-31"]]))
    assert calendar.add(_paris(2026, 3, 2, 10), _hours(1)) == _paris(2031, 1, 2, 10)


def test_add_beyond_the_open_time_of_an_openings_only_calendar_is_refused_quickly() -> None:
    calendar = BusinessCalendar.from_spec(
        {
            "timezone": "Europe/Paris",
            "openings": [{"from": "2026-06-01", "to": "2026-06-01", "hours": [["10:00", "12:00"]]}],
        }
    )
    began = time.perf_counter()
    with pytest.raises(ValueError, match="no open time"):
        calendar.add(_paris(2026, 1, 1), _hours(3))
    assert time.perf_counter() - began < 1
    assert calendar.add(_paris(2026, 1, 1), _hours(2)) == _paris(2026, 6, 1, 12)


def test_next_open_after_the_last_opening_is_refused() -> None:
    calendar = BusinessCalendar.from_spec(
        {
            "timezone": "Europe/Paris",
            "openings": [{"from": "2026-06-01", "to": "2026-06-01", "hours": [["10:00", "12:00"]]}],
        }
    )
    with pytest.raises(ValueError, match="no open time"):
        calendar.next_open(_paris(2026, 6, 1, 12))


def test_ten_years_without_open_time_is_refused() -> None:
    calendar = BusinessCalendar.from_spec(_spec(closures=[["2026-01-01", "2045-12-31"]]))
    with pytest.raises(ValueError, match="within 10 years"):
        calendar.add(_paris(2026, 3, 2, 10), _hours(1))


def test_a_duration_beyond_the_supported_years_is_refused_at_once() -> None:
    hour_a_week = BusinessCalendar.from_spec({"timezone": "UTC", "weekly": {"mon": [["09:00", "10:00"]]}})
    with pytest.raises(ValueError, match="beyond the year"):
        hour_a_week.add(datetime(2026, 1, 5, tzinfo=UTC), timedelta(days=10**6))


# ------------------------------------------------------------------ the stored spec


def test_the_spec_is_normalised_and_rebuilds_the_same_calendar() -> None:
    spec = BusinessCalendar.from_spec(_spec(holidays={"country": "fr"})).spec
    assert spec["holidays"] == {"country": "FR", "subdivision": None}
    assert list(spec["weekly"]) == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert spec["weekly"]["sun"] == []
    assert BusinessCalendar.from_spec(spec).spec == spec


def test_changing_the_returned_spec_leaves_the_calendar_alone() -> None:
    calendar = BusinessCalendar.from_spec(_spec())
    calendar.spec["weekly"]["mon"].clear()
    assert calendar.spec["weekly"]["mon"] == [["09:00", "12:00"], ["13:30", "18:00"]]


# ------------------------------------------------------------------ refused specs


def test_a_spec_error_is_a_value_error_naming_its_field() -> None:
    error = _refusal(_spec(timezone="Europe/Pariss"))
    assert isinstance(error, ValueError)
    assert str(error) == f"{error.field}: {error.message}"


def test_a_spec_that_is_not_an_object_is_refused() -> None:
    assert _refusal(["Europe/Paris"]).field == ""


def test_an_unknown_top_level_key_is_refused() -> None:
    assert _refusal(_spec(hollidays=None)).field == "/hollidays"


def test_an_unknown_time_zone_is_refused() -> None:
    assert _refusal(_spec(timezone="Europe/Pariss")).field == "/timezone"


def test_a_missing_time_zone_is_refused() -> None:
    spec = _spec()
    del spec["timezone"]
    assert _refusal(spec).field == "/timezone"


def test_a_malformed_time_is_refused() -> None:
    error = _refusal(_spec(weekly={"mon": [["9:00", "12:00"]]}))
    assert error.field == "/weekly/mon/0"
    assert "9:00" in error.message


def test_an_hour_past_24_is_refused() -> None:
    assert _refusal(_spec(weekly={"mon": [["09:00", "24:30"]]})).field == "/weekly/mon/0"


def test_24_00_as_a_start_is_refused() -> None:
    assert _refusal(_spec(weekly={"mon": [["24:00", "06:00"]]})).field == "/weekly/mon/0"


def test_an_interval_that_is_not_a_pair_is_refused() -> None:
    assert _refusal(_spec(weekly={"mon": [["09:00", "12:00"], "13:00-14:00"]})).field == "/weekly/mon/1"


def test_an_interval_ending_when_it_starts_is_refused() -> None:
    assert _refusal(_spec(weekly={"mon": [["09:00", "09:00"]]})).field == "/weekly/mon/0"


def test_overlapping_intervals_on_a_day_are_refused() -> None:
    error = _refusal(_spec(weekly={"mon": [["09:00", "12:00"], ["11:00", "14:00"]]}))
    assert error.field == "/weekly/mon/1"
    assert str(error) == "/weekly/mon/1: overlaps 09:00\u201312:00"


def test_an_overnight_interval_overlapping_the_same_day_is_refused() -> None:
    assert _refusal(_spec(weekly={"mon": [["22:00", "06:00"], ["23:00", "23:30"]]})).field == "/weekly/mon/1"


def test_an_overnight_interval_overlapping_the_next_day_is_refused() -> None:
    error = _refusal(_spec(weekly={"fri": [["22:00", "06:00"]], "sat": [["05:00", "08:00"]]}))
    assert error.field == "/weekly/fri/0"
    assert "sat 05:00" in error.message


def test_a_sunday_night_overlapping_monday_is_refused() -> None:
    error = _refusal(_spec(weekly={"sun": [["20:00", "09:30"]], "mon": [["09:00", "12:00"]]}))
    assert error.field == "/weekly/sun/0"


def test_an_unknown_weekday_is_refused() -> None:
    assert _refusal(_spec(weekly={"monday": [["09:00", "12:00"]]})).field == "/weekly/monday"


def test_an_unknown_holiday_country_is_refused() -> None:
    assert _refusal(_spec(holidays={"country": "XX"})).field == "/holidays/country"


def test_an_unknown_holiday_subdivision_is_refused() -> None:
    assert _refusal(_spec(holidays={"country": "DE", "subdivision": "ZZ"})).field == "/holidays/subdivision"


def test_a_closure_ending_before_it_starts_is_refused() -> None:
    error = _refusal(_spec(closures=[["2026-12-24", "2026-12-26"], ["2026-12-31", "2026-12-30"]]))
    assert error.field == "/closures/1"


def test_a_closure_with_a_bad_date_is_refused() -> None:
    assert _refusal(_spec(closures=[["2026-02-30", "2026-03-01"]])).field == "/closures/0"


def test_an_opening_ending_before_it_starts_is_refused() -> None:
    opening = {"from": "2026-05-02", "to": "2026-05-01", "hours": [["10:00", "12:00"]]}
    assert _refusal(_spec(openings=[opening])).field == "/openings/0"


def test_an_opening_with_a_bad_date_is_refused() -> None:
    opening = {"from": "1 May 2026", "to": "2026-05-01", "hours": [["10:00", "12:00"]]}
    assert _refusal(_spec(openings=[opening])).field == "/openings/0/from"


def test_an_opening_with_bad_hours_is_refused() -> None:
    opening = {"from": "2026-05-01", "to": "2026-05-01", "hours": [["10:00", "12:00"], ["11:00", "13:00"]]}
    assert _refusal(_spec(openings=[opening])).field == "/openings/0/hours/1"


def test_openings_on_the_same_date_are_refused() -> None:
    first = {"from": "2026-05-01", "to": "2026-05-03", "hours": [["10:00", "12:00"]]}
    second = {"from": "2026-05-03", "to": "2026-05-03", "hours": [["14:00", "16:00"]]}
    assert _refusal(_spec(openings=[first, second])).field == "/openings/1"


def test_a_calendar_that_is_never_open_is_refused() -> None:
    assert _refusal({"timezone": "Europe/Paris", "weekly": {}, "openings": []}).field == "/weekly"
