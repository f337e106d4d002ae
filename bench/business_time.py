"""Business-time addition: ``BusinessCalendar.add`` against the ``businesstimedelta`` package.

Same random (start, duration) pairs (fixed seed) on realistic calendars; prints
additions per second for each, their ratio, and how many answers disagree.
Target: ours >= 25x businesstimedelta (>= 100,000 adds/s).

- Paris: 09:00-12:00 and 13:30-18:00 Monday to Friday, French holidays.
- Bucharest: 08:00-17:00 Monday to Friday, Romanian holidays.
- Manila: 22:00-06:00 Monday to Friday nights, Philippine holidays. Ours only:
  businesstimedelta cannot express an overnight shift. Its ``WorkDayRule``
  accepts an end before the start but loses the part after midnight when the
  start falls in it (Tuesday 03:00 + 1h gives Tuesday 23:00, not 04:00), and its
  ``HolidayRule`` closes calendar dates 00:00-24:00, where ours closes the
  shifts that start on the holiday.

Ours is timed on a fresh instance, so the first calls pay for materialising
each year. businesstimedelta is slow (one ``Rules.next`` per open interval
crossed, each scanning day by day to the next holiday), so by default it runs
on the first 10,000 pairs only; ``--baseline-pairs`` changes that. It is given
its fastest holiday form, a set of dates, rather than a ``holidays`` object.

Run: ``.venv/bin/python bench/business_time.py [--pairs 100000] [--baseline-pairs 10000]``.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import businesstimedelta as btd
import holidays
import pytz

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.sla.calendars import BusinessCalendar  # noqa: E402

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
FIRST = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 2 * 365 * 86_400  # starts over 2026 and 2027
MAX_DURATION = 40 * 3_600  # up to a working week of business time
SEED = 20260101

Pair = tuple[datetime, timedelta]


@dataclass
class Case:
    name: str
    spec: dict[str, Any]
    baseline: Callable[[], btd.Rule] | None  # None: businesstimedelta cannot express it


def _holiday_rule(country: str, zone: Any) -> btd.HolidayRule:
    dates = set(holidays.country_holidays(country, years=range(2025, 2031)))
    return btd.HolidayRule(dates, tz=zone)


def _paris_rule() -> btd.Rule:
    zone = pytz.timezone("Europe/Paris")
    return btd.Rules(
        [
            btd.WorkDayRule(start_time=time(9), end_time=time(18), working_days=[0, 1, 2, 3, 4], tz=zone),
            btd.LunchTimeRule(
                start_time=time(12), end_time=time(13, 30), working_days=[0, 1, 2, 3, 4], tz=zone
            ),
            _holiday_rule("FR", zone),
        ]
    )


def _bucharest_rule() -> btd.Rule:
    zone = pytz.timezone("Europe/Bucharest")
    return btd.Rules(
        [
            btd.WorkDayRule(start_time=time(8), end_time=time(17), working_days=[0, 1, 2, 3, 4], tz=zone),
            _holiday_rule("RO", zone),
        ]
    )


CASES = [
    Case(
        "Paris split shifts, FR holidays",
        {
            "timezone": "Europe/Paris",
            "weekly": {day: [["09:00", "12:00"], ["13:30", "18:00"]] for day in WEEKDAYS},
            "holidays": {"country": "FR", "subdivision": None},
        },
        _paris_rule,
    ),
    Case(
        "Bucharest 08:00-17:00, RO holidays",
        {
            "timezone": "Europe/Bucharest",
            "weekly": {day: [["08:00", "17:00"]] for day in WEEKDAYS},
            "holidays": {"country": "RO", "subdivision": None},
        },
        _bucharest_rule,
    ),
    Case(
        "Manila nights 22:00-06:00, PH holidays",
        {
            "timezone": "Asia/Manila",
            "weekly": {day: [["22:00", "06:00"]] for day in WEEKDAYS},
            "holidays": {"country": "PH", "subdivision": None},
        },
        None,
    ),
]


def _pairs(count: int) -> list[Pair]:
    rng = random.Random(SEED)
    return [
        (
            FIRST + timedelta(seconds=rng.randrange(SPAN_SECONDS)),
            timedelta(seconds=rng.randrange(60, MAX_DURATION)),
        )
        for _ in range(count)
    ]


def _ours(spec: dict[str, Any], pairs: list[Pair]) -> tuple[float, list[datetime]]:
    calendar = BusinessCalendar.from_spec(spec)
    add = calendar.add
    began = perf_counter()
    answers = [add(start, duration) for start, duration in pairs]
    return len(pairs) / (perf_counter() - began), answers


def _theirs(rule: btd.Rule, pairs: list[Pair]) -> tuple[float, list[datetime]]:
    began = perf_counter()
    answers = [start + btd.BusinessTimeDelta(rule, timedelta=duration) for start, duration in pairs]
    return len(pairs) / (perf_counter() - began), answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--baseline-pairs", type=int, default=10_000)
    args = parser.parse_args()
    pairs = _pairs(args.pairs)
    baseline_pairs = pairs[: args.baseline_pairs]
    print(f"{len(pairs):,} (start, duration) pairs, seed {SEED}")
    print(f"businesstimedelta on the first {len(baseline_pairs):,}; answers compared on those")
    ratios = []
    for case in CASES:
        print(f"\n{case.name}")
        ours_rate, ours = _ours(case.spec, pairs)
        print(f"  ours:              {ours_rate:12,.0f} adds/s")
        if case.baseline is None:
            print("  businesstimedelta: skipped, it cannot express overnight shifts (see the docstring)")
            continue
        theirs_rate, theirs = _theirs(case.baseline(), baseline_pairs)
        ratio = ours_rate / theirs_rate
        ratios.append(ratio)
        print(f"  businesstimedelta: {theirs_rate:12,.0f} adds/s")
        print(f"  ratio:             {ratio:12,.1f}x")
        zone = pytz.timezone(case.spec["timezone"])
        disagreements = [
            (start, duration, mine, their)
            for (start, duration), mine, their in zip(baseline_pairs, ours, theirs, strict=False)
            if mine != their
        ]
        print(f"  disagreements:     {len(disagreements):12,} of {len(baseline_pairs):,}")
        for start, duration, mine, their in disagreements[:5]:
            local = "%a %Y-%m-%d %H:%M:%S"
            print(
                f"    {start.astimezone(zone):{local}} + {duration}: "
                f"ours {mine.astimezone(zone):{local}}, theirs {their.astimezone(zone):{local}}"
            )
    print(f"\nworst ratio: {min(ratios):.1f}x (target >= 25x)")


if __name__ == "__main__":
    main()
