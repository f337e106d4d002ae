"""The rate card engine: what a quantity costs under a price, by day of contract version.

Pure functions over frozen dataclasses, no database. Every amount is an exact
``Decimal`` in major units and nothing here rounds: an invoice line is rounded
once, half-even, to minor units by ``services.core.money.to_minor``. The only
inexact step is proration (a 30-day month divides by 30), carried to 18
decimal places in a way that keeps the slices of a period summing exactly to
its whole amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, localcontext
from enum import StrEnum
from itertools import pairwise

# Products and sums of amounts, quantities and prices fit easily; anything that would not is an
# error (Inexact is trapped) rather than a silent rounding.
_EXACT = Context(prec=38, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Inexact])
# Room for the subtraction of two proration points of different exponents, still trapped.
_WIDE = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Inexact])
_APPROX = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero])
# 18 places: far below any minor unit (so a line's rounding cannot move), and an amount under
# 10^10 with them still fits the default 28-digit context of whoever sums the slices.
_PRORATION_QUANTUM = Decimal("1e-18")

SURCHARGE_WHEN = ("out_of_hours", "language")


class TierMode(StrEnum):
    GRADUATED = "graduated"  # each unit at the price of the tier it falls in (Stripe's "graduated")
    VOLUME = "volume"  # every unit at the price of the tier the total falls in (Stripe's "volume")


@dataclass(frozen=True)
class Tier:
    """Quantities in (first, up_to]; the first tier starts at 0 and the last is unbounded (None)."""

    first: Decimal
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)  # charged once when part of the quantity falls in the tier


@dataclass(frozen=True)
class Price:
    """How one metric (optionally of one task kind) is priced: a flat unit price or tiers."""

    metric: str
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    mode: TierMode = TierMode.GRADUATED
    task_kind: str | None = None


@dataclass(frozen=True)
class Surcharge:
    """A percentage added to the charges of out-of-hours work or of work in given languages."""

    percent: Decimal
    when: str  # one of SURCHARGE_WHEN
    languages: tuple[str, ...] = ()


def _finite(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def tier_errors(tiers: Sequence[Tier]) -> list[tuple[int, str]]:
    """(tier index, message) for each problem of a tier list; an empty list means valid."""
    if not tiers:
        return [(0, "at least one tier is required")]
    errors: list[tuple[int, str]] = []
    last = len(tiers) - 1
    for index, tier in enumerate(tiers):
        bounds = [tier.first] if tier.up_to is None else [tier.first, tier.up_to]
        if not all(_finite(value) for value in [*bounds, tier.unit_price, tier.flat_fee]):
            errors.append((index, "first, up_to, unit_price and flat_fee must be finite decimals"))
            continue  # comparisons with a NaN would raise, and the rest says nothing more useful
        if index == 0 and tier.first != 0:
            errors.append((index, "the first tier must start at 0"))
        if tier.up_to is not None and tier.up_to <= tier.first:
            errors.append((index, "up_to must be greater than first"))
        if tier.up_to is None and index != last:
            errors.append((index, "only the last tier may be unbounded"))
        if tier.up_to is not None and index == last:
            errors.append((index, "the last tier must be unbounded (up_to null)"))
        if tier.unit_price < 0:
            errors.append((index, "unit_price must not be negative"))
        if tier.flat_fee < 0:
            errors.append((index, "flat_fee must not be negative"))
        if index > 0:
            previous = tiers[index - 1]
            if previous.up_to is not None and _finite(previous.up_to) and tier.first != previous.up_to:
                kind = "gap" if tier.first > previous.up_to else "overlap"
                errors.append(
                    (index, f"{kind}: first must equal the previous tier's up_to ({previous.up_to})")
                )
    return errors


def price_errors(price: Price) -> list[tuple[str, str]]:
    """(pointer suffix, message) for each problem of a price, e.g. ("/tiers/1", "...")."""
    errors: list[tuple[str, str]] = []
    if not price.metric:
        errors.append(("/metric", "a metric is required"))
    if (price.unit_price is None) == (not price.tiers):
        errors.append(("/unit_price", "set either unit_price or tiers, not both and not neither"))
    if price.unit_price is not None and (not _finite(price.unit_price) or price.unit_price < 0):
        errors.append(("/unit_price", "unit_price must be a finite, non-negative decimal"))
    if price.tiers:
        errors.extend((f"/tiers/{index}", message) for index, message in tier_errors(price.tiers))
    return errors


def _require_quantity(quantity: Decimal) -> None:
    if not _finite(quantity) or quantity < 0:
        raise ValueError(f"quantity must be a finite, non-negative Decimal, got {quantity!r}")


def charge(price: Price, quantity: Decimal) -> Decimal:
    """The exact, unrounded charge in major units for ``quantity`` under ``price``.

    Nothing used costs nothing, flat fees included: a floor is the contract's monthly minimum.
    """
    problems = price_errors(price)
    if problems:
        pointer, message = problems[0]
        raise ValueError(f"invalid price for {price.metric!r} at {pointer}: {message}")
    _require_quantity(quantity)
    with localcontext(_EXACT):
        if price.unit_price is not None:
            return quantity * price.unit_price
        if quantity == 0:
            return Decimal(0)
        if price.mode is TierMode.VOLUME:
            tier = next(t for t in price.tiers if t.up_to is None or quantity <= t.up_to)
            return quantity * tier.unit_price + tier.flat_fee
        total = Decimal(0)
        for tier in price.tiers:
            if quantity <= tier.first:  # (first, up_to]: a quantity at a boundary stays below it
                break
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            total += (top - tier.first) * tier.unit_price + tier.flat_fee
        return total


def _share_until(amount: Decimal, day: int, days_in_period: int) -> Decimal:
    """The part of ``amount`` due for the period's first ``day`` days (a proration point)."""
    if day == 0:
        return Decimal(0)
    if day == days_in_period:
        return amount  # exactly, whatever the amount's decimals: the slices must add up to it
    numerator = amount * day
    try:
        with localcontext(_WIDE):
            return numerator / days_in_period
    except Inexact:
        with localcontext(_APPROX):
            return (numerator / days_in_period).quantize(_PRORATION_QUANTUM)


def prorated(amount: Decimal, days: int, days_in_period: int, *, days_before: int = 0) -> Decimal:
    """The unrounded part of ``amount`` due for ``days`` of a ``days_in_period``-day period.

    ``days_before`` is how many days of the period precede the slice. Each slice is the
    difference of two proration points, so the slices of one amount over a whole period add
    up to the amount exactly, even where a single slice (10 days of 30) cannot be exact.
    """
    if days_in_period <= 0:
        raise ValueError("days_in_period must be positive")
    if days < 0 or days_before < 0 or days_before + days > days_in_period:
        raise ValueError(f"a slice of {days} days after {days_before} does not fit {days_in_period} days")
    if not _finite(amount):
        raise ValueError(f"amount must be a finite Decimal, got {amount!r}")
    end = _share_until(amount, days_before + days, days_in_period)
    start = _share_until(amount, days_before, days_in_period)
    with localcontext(_WIDE):
        return end - start


def days_in_force(
    effective: list[date], period_start: date, period_end_exclusive: date
) -> list[tuple[int, date, date]]:
    """(version index, first day, end day exclusive) of each version's days within the period.

    ``effective`` are the versions' effective-from dates in order; a day is priced by the
    version with the latest effective-from on or before it (the later of two on the same date).
    Days before the first version are left out: no contract was in force.
    """
    if period_end_exclusive < period_start:
        raise ValueError("the period ends before it starts")
    if any(later < earlier for earlier, later in pairwise(effective)):
        raise ValueError("effective dates must be in order")
    slices: list[tuple[int, date, date]] = []
    for index, effective_from in enumerate(effective):
        until = effective[index + 1] if index + 1 < len(effective) else period_end_exclusive
        first, end = max(effective_from, period_start), min(until, period_end_exclusive)
        if first < end:
            slices.append((index, first, end))
    return slices


def surcharge_errors(surcharge: Surcharge) -> list[tuple[str, str]]:
    """(pointer suffix, message) for each problem of a surcharge; an empty list means valid."""
    errors: list[tuple[str, str]] = []
    if not _finite(surcharge.percent) or not 0 <= surcharge.percent <= 100:
        errors.append(("/percent", "percent must be between 0 and 100"))
    if surcharge.when not in SURCHARGE_WHEN:
        errors.append(("/when", f"when must be one of {', '.join(SURCHARGE_WHEN)}"))
    if surcharge.when == "language" and not surcharge.languages:
        errors.append(("/languages", "a language surcharge needs at least one language"))
    if surcharge.when == "out_of_hours" and surcharge.languages:
        errors.append(("/languages", "an out-of-hours surcharge takes no languages"))
    seen: set[str] = set()
    for index, code in enumerate(surcharge.languages):
        if not (len(code) == 2 and code.isascii() and code.isalpha() and code.islower()):
            errors.append((f"/languages/{index}", "a language is a 2-letter lower-case code (ISO 639-1)"))
        elif code in seen:
            errors.append((f"/languages/{index}", f"{code} is listed twice"))
        seen.add(code)
    return errors


def surcharge_applies(surcharge: Surcharge, *, language: str | None, out_of_hours: bool) -> bool:
    """Whether work in ``language``, done in or out of hours, carries the surcharge."""
    if surcharge.when == "out_of_hours":
        return out_of_hours
    return language is not None and language in surcharge.languages


def surcharge_amount(base: Decimal, surcharge: Surcharge) -> Decimal:
    """The unrounded surcharge on charges worth ``base`` (major units)."""
    with localcontext(_EXACT):
        return base * surcharge.percent / 100
