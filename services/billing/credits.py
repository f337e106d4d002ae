"""SLA credits: a month's attainment mapped to a credit percentage by the contract's bands.

A band reads "below 98 % attainment, credit 10 % of the charges". Bands go from the
highest threshold down, each lower threshold crediting more; the credit is the one
of the lowest band the attainment is under, limited by the contract's cap. Pure
functions, exact ``Decimal``; the invoice line negates and rounds the amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, localcontext

_EXACT = Context(prec=38, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Inexact])


@dataclass(frozen=True)
class Band:
    below: Decimal  # attainment percent the month must fall strictly under, e.g. Decimal("98")
    credit_percent: Decimal  # of the month's charges


def _percent(value: object) -> bool:
    """A finite Decimal in (0, 100]."""
    return isinstance(value, Decimal) and value.is_finite() and 0 < value <= 100


def band_errors(bands: Sequence[Band], cap: Decimal) -> list[tuple[str, str]]:
    """(pointer suffix, message) for each problem, e.g. ("/bands/1/credit_percent", "...").

    A credit_percent above the cap is allowed: the cap limits it.
    """
    errors: list[tuple[str, str]] = []
    if not _percent(cap):
        errors.append(("/cap", "cap must be greater than 0 and at most 100"))
    for index, band in enumerate(bands):
        below_ok, credit_ok = _percent(band.below), _percent(band.credit_percent)
        if not below_ok:
            errors.append((f"/bands/{index}/below", "below must be greater than 0 and at most 100"))
        if not credit_ok:
            errors.append(
                (f"/bands/{index}/credit_percent", "credit_percent must be greater than 0 and at most 100")
            )
        if index == 0:
            continue
        previous = bands[index - 1]
        if below_ok and _percent(previous.below) and band.below >= previous.below:
            errors.append(
                (f"/bands/{index}/below", f"below must be lower than the previous band's ({previous.below})")
            )
        if credit_ok and _percent(previous.credit_percent) and band.credit_percent <= previous.credit_percent:
            errors.append(
                (
                    f"/bands/{index}/credit_percent",
                    f"credit_percent must be higher than the previous band's ({previous.credit_percent})",
                )
            )
    return errors


def credit_percent(attainment_percent: Decimal | None, bands: Sequence[Band], cap: Decimal) -> Decimal:
    """The credit percentage for a month's attainment; nothing measured (None) credits nothing."""
    problems = band_errors(bands, cap)
    if problems:
        pointer, message = problems[0]
        raise ValueError(f"invalid SLA credit terms at {pointer}: {message}")
    if attainment_percent is None:
        return Decimal(0)
    if not attainment_percent.is_finite() or not 0 <= attainment_percent <= 100:
        raise ValueError(f"attainment must be between 0 and 100, got {attainment_percent}")
    under = [band for band in bands if attainment_percent < band.below]
    if not under:
        return Decimal(0)
    lowest = min(under, key=lambda band: band.below)
    return min(lowest.credit_percent, cap)


def credit_amount(base: Decimal, percent: Decimal) -> Decimal:
    """The unrounded, positive credit of ``percent`` on charges worth ``base`` (major units)."""
    if not base.is_finite() or base < 0:
        raise ValueError(f"the base of a credit must be a finite, non-negative amount, got {base}")
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise ValueError(f"a credit percent must be between 0 and 100, got {percent}")
    with localcontext(_EXACT):
        return base * percent / 100
