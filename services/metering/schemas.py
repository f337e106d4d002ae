"""Usage events in and out, and the usage report."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.core.database import Micros

MAX_BATCH = 1000
Quantity = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=Micros.PLACES, allow_inf_nan=False)]


class UnitPrice(BaseModel):
    """A manual item's own price, in the contract's currency (major units, e.g. "12.50")."""

    model_config = ConfigDict(extra="forbid")

    amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=Micros.PLACES, allow_inf_nan=False)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class UsageEventIn(BaseModel):
    """One event of ``POST /v1/usage-events``. A reversal (``reverses``) names the event it
    cancels and takes everything else from it."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: uuid.UUID | None = None  # operators name the client; a client's own is implied
    metric: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")] | None = None
    quantity: Quantity | None = None
    occurred_at: AwareDatetime | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    source: Annotated[str, StringConstraints(max_length=200)] = "api"
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    queue_id: uuid.UUID | None = None
    task_kind: Annotated[str, StringConstraints(max_length=64)] | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")] | None = None
    out_of_hours: bool = False
    unit_price: UnitPrice | None = None
    reverses: uuid.UUID | None = None


class UsageBatchIn(BaseModel):
    events: Annotated[list[dict[str, Any]], Field(max_length=MAX_BATCH)]


class EventError(BaseModel):
    pointer: str
    message: str


class Adjustment(BaseModel):
    """An event dated in a finalised period: billed on a later invoice, as an adjustment."""

    period: str
    billed_in: str


class EventResult(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    id: uuid.UUID | None = None
    errors: list[EventError] | None = None
    adjustment: Adjustment | None = None


class UsageBatchOut(BaseModel):
    results: list[EventResult]
    accepted: int
    duplicates: int
    rejected: int


class UsageRow(BaseModel):
    tenant_id: uuid.UUID
    metric: str
    task_kind: str | None
    queue_id: uuid.UUID | None
    quantity: Decimal
    events: int


class UsageReport(BaseModel):
    period: str
    timezone: str
    items: list[UsageRow]
