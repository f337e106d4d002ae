"""How well someone speaks a language (CEFR A1-C2, or native) and masters a skill (1-5):
the scales queues require and teams and agents declare."""

from __future__ import annotations

import enum


class LanguageLevel(enum.StrEnum):
    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"
    C1 = "C1"
    C2 = "C2"
    NATIVE = "native"


_ORDER = {level: index for index, level in enumerate(LanguageLevel)}
SKILL_LEVELS = range(1, 6)


def at_least(level: LanguageLevel | str, minimum: LanguageLevel | str) -> bool:
    return _ORDER[LanguageLevel(level)] >= _ORDER[LanguageLevel(minimum)]
