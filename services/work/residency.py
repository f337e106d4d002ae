"""Data-residency rules: which countries may handle a queue's data.

A rule allows countries or named regions (``REGIONS``) and may deny some; the
routing issue adds the check of a team's country against it.
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
