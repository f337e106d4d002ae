"""Data-residency rules: which countries may handle a queue's data.

A rule allows countries or named regions (``REGIONS``) and may deny some; an
engagement and every routing decision check a team's country against it (``allows``).
"""

from __future__ import annotations

from collections.abc import Iterable

from babel import Locale

EU = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
REGIONS: dict[str, frozenset[str]] = {
    "EU": EU,
    "EEA": EU | {"IS", "LI", "NO"},
    # Countries with an EU adequacy decision (GDPR art. 45), as of 2026.
    "ADEQUATE": EU
    | {"IS", "LI", "NO", "CH", "GB", "JP", "KR", "NZ", "IL", "UY", "AR", "CA", "AD", "FO", "GG", "IM", "JE"},
}
_TERRITORIES = frozenset(
    str(code) for code in Locale("en").territories if str(code).isalpha() and len(str(code)) == 2
)


def unknown_codes(codes: Iterable[str]) -> list[str]:
    """Entries that are neither an ISO 3166 country code nor a named region."""
    return [code for code in codes if code not in REGIONS and code not in _TERRITORIES]


def _expand(codes: Iterable[str]) -> set[str]:
    countries: set[str] = set()
    for code in codes:
        countries |= REGIONS.get(code, frozenset({code}))
    return countries


def allows(allow: Iterable[str], deny: Iterable[str], country: str) -> bool:
    """Whether a rule lets ``country`` handle the data: allowed (an empty list allows every
    country) and not denied."""
    allowed = list(allow)
    if allowed and country not in _expand(allowed):
        return False
    return country not in _expand(deny)
