"""Hard constraints: who may take a task at all. Never relaxed, never scored.

A candidate (a team, or an agent of it) that fails one is not eligible, and the first
constraint it fails is its reason in the trace: ``engagement`` (the team does not serve the
queue), ``residency`` (the queue's rule excludes the team's country), ``language`` (nobody
speaks the task's language at the queue's level), ``skill``, ``calendar`` (the staffing
calendar is closed now and the queue does not allow out-of-hours), ``presence`` (the agent
is not online), ``capacity`` (the agent holds as many open tasks of the kind as allowed).
Plain functions of plain values, so that property tests can throw any workforce at them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from services.sla.calendars import BusinessCalendar
from services.work import residency
from services.work.proficiency import LanguageLevel, at_least

FAILURES = ("engagement", "residency", "language", "skill", "calendar", "presence", "capacity")
# Below this confidence a detected language is a guess: any of the queue's languages will do.
CONFIDENT = 0.8


@dataclass(frozen=True)
class Requirements:
    """What a queue asks of whoever handles its tasks."""

    languages: tuple[str, ...]
    skills: tuple[tuple[str, int], ...]  # (name, minimum level)
    residency_allow: tuple[str, ...]
    residency_deny: tuple[str, ...]
    out_of_hours: bool
    min_language_level: LanguageLevel


@dataclass(frozen=True)
class Profile:
    """A team, or an agent with the team's values where the agent overrides none."""

    country: str
    languages: tuple[tuple[str, str], ...]  # (code, CEFR level)
    skills: tuple[tuple[str, int], ...]
    calendar: dict[str, Any]


def task_languages(
    requirements: Requirements, language: str | None, confidence: float | None
) -> tuple[str, ...]:
    """The languages a candidate may serve the task in: its own, when known (given by the
    client, or detected with confidence); else any of the queue's (none named: any)."""
    if language is not None and (confidence is None or confidence >= CONFIDENT):
        return (language,)
    return requirements.languages


def speaks(profile: Profile, languages: Sequence[str], minimum: LanguageLevel) -> bool:
    if not languages:
        return True
    return any(
        code == wanted and at_least(level, minimum)
        for code, level in profile.languages
        for wanted in languages
    )


def skilled(profile: Profile, required: Iterable[tuple[str, int]]) -> bool:
    held = dict(profile.skills)
    return all(held.get(name, 0) >= minimum for name, minimum in required)


def team_failure(
    requirements: Requirements, profile: Profile, languages: Sequence[str], now: datetime
) -> str | None:
    """The first hard constraint a team (or agent profile) fails for a task, or None."""
    if not residency.allows(requirements.residency_allow, requirements.residency_deny, profile.country):
        return "residency"
    if not speaks(profile, languages, requirements.min_language_level):
        return "language"
    if not skilled(profile, requirements.skills):
        return "skill"
    if not requirements.out_of_hours and not calendar_of(profile.calendar).is_open(now):
        return "calendar"
    return None


def agent_failure(online: bool, open_tasks: int, capacity: int) -> str | None:
    if not online:
        return "presence"
    if open_tasks >= capacity:
        return "capacity"
    return None


def calendar_of(spec: dict[str, Any]) -> BusinessCalendar:
    return _calendar(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=512)
def _calendar(spec: bytes) -> BusinessCalendar:
    """Calendars are built once per spec: a built calendar caches its years."""
    return BusinessCalendar.from_spec(orjson.loads(spec))


def capacity_for(capacity: dict[str, int], kind: str) -> int:
    return capacity.get(kind, capacity.get("*", 1))
