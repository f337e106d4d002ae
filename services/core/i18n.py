"""Translations and locale negotiation with Babel.

Catalogs live in ``locales/<lang>/LC_MESSAGES/messages.po``; they are compiled
in memory when first used, so no compiled ``.mo`` file is kept in the tree.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parents[2] / "locales"
DEFAULT_LOCALE = "en"


def _(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


@lru_cache(maxsize=1)
def available_locales() -> tuple[str, ...]:
    found = {p.parent.parent.name for p in LOCALES_DIR.glob("*/LC_MESSAGES/messages.po")}
    return tuple(sorted(found | {DEFAULT_LOCALE}))


@lru_cache(maxsize=32)
def translations(locale: str) -> NullTranslations:
    po_path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain="messages")


def gettext(locale: str, message: str, **variables: object) -> str:
    text = translations(locale).gettext(message)
    return text % variables if variables else text


@lru_cache(maxsize=1024)  # on every request (Accept-Language); Babel's parse reads the disk
def normalize(tag: str | None) -> str | None:
    """The supported locale for a BCP 47 tag ("fr-BE" -> "fr"), or None."""
    if not tag:
        return None
    try:
        parsed = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    supported = available_locales()
    full = str(parsed)
    if full in supported:
        return full
    return parsed.language if parsed.language in supported else None


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an Accept-Language header, best first."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _q, _i, tag in sorted(weighted)]


def negotiate(user_choice: str | None, accept_language: str | None, organisation_default: str | None) -> str:
    """The user's choice, else the browser's, else the organisation's, else English."""
    for candidate in (user_choice, *parse_accept_language(accept_language), organisation_default):
        locale = normalize(candidate)
        if locale:
            return locale
    return DEFAULT_LOCALE


def language_name(locale: str) -> str:
    """The language's own name ("français"), for the locale switcher."""
    return Locale.parse(locale).get_display_name(locale) or locale
