"""Time helpers: the platform stores and compares timezone-aware UTC only."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_aware(value: datetime) -> datetime:
    """Reject naive datetimes instead of guessing their zone."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("naive datetime: a timezone-aware value is required")
    return value.astimezone(UTC)


def month_bounds(period: str, zone: str) -> tuple[datetime, datetime]:
    """The UTC start and end (exclusive) of a month "YYYY-MM" as lived in ``zone``: a
    billing period starts at midnight on the 1st in the contract's timezone."""
    year, month = (int(part) for part in period.split("-"))
    tz = ZoneInfo(zone)
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def month_of(moment: datetime, zone: str) -> str:
    """The month "YYYY-MM" that ``moment`` falls in, in ``zone``."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local.year:04d}-{local.month:02d}"


def next_month(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
