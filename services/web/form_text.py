"""What people type in a form's text fields, read: lists of "name value" entries ("fr C1,
en B2", one a line or separated by commas) and whole numbers. What cannot be read is
``Unreadable``, said in the viewer's language over the form."""

from __future__ import annotations

import re
from typing import Any

from services.core.i18n import _

_SEPARATORS = re.compile(r"[,\n]")


class Unreadable(ValueError):
    """What was typed cannot be read; said in the viewer's language."""

    def __init__(self, message: str, **variables: str) -> None:
        super().__init__(message % variables)
        self.message, self.variables = message, variables


def parts(text: str) -> list[str]:
    """The non-empty entries of a list typed one a line or separated by commas."""
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]


def entries(text: str) -> list[tuple[str, str]]:
    """ "fr C1, en B2" as [("fr", "C1"), ("en", "B2")]; a name may hold spaces ("data
    entry 3"), its value is the last word."""
    found = []
    for part in parts(text):
        words = part.split()
        if len(words) < 2:
            raise Unreadable(_("“%(entry)s” needs a name and a value, as in “fr C1”"), entry=part)
        found.append((" ".join(words[:-1]), words[-1]))
    return found


def written(pairs: list[dict[str, Any]] | None, name: str, value: str) -> str:
    return ", ".join(f"{pair[name]} {pair[value]}" for pair in pairs or [])


def number(value: str, of: str) -> int:
    if not value.lstrip("-").isdigit():
        raise Unreadable(_("%(name)s: “%(value)s” is not a whole number"), name=of, value=value)
    return int(value)
