"""Request and answer shapes of the SLA API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.sla.models import (
    ClockState,
    EscalationAction,
    Metric,
    Outcome,
    PauseCause,
    SegmentKind,
    Trigger,
)
from services.work.models import Priority

_SPEC_EXAMPLE: dict[str, Any] = {
    "timezone": "Europe/Paris",
    "weekly": {d: [["09:00", "12:00"], ["13:30", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "FR", "subdivision": None},
    "closures": [["2026-12-24", "2026-12-26"]],
    "openings": [],
}


class CalendarVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(examples=[_SPEC_EXAMPLE])
    effective_from: AwareDatetime | None = Field(default=None, description="Default: now")


class CalendarCreate(CalendarVersionIn):
    name: str = Field(min_length=1, max_length=120)
    tenant_id: uuid.UUID | None = Field(
        default=None, description="The client organisation (operators name one of their portfolio)"
    )


class CalendarVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    effective_from: datetime
    spec: dict[str, Any]


class CalendarOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    versions: list[CalendarVersionOut]


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Metric
    priority: Priority | None = Field(default=None, description="None: every priority")
    queue_id: uuid.UUID | None = None
    task_kind: str | None = None
    minutes: int = Field(gt=0, le=366 * 24 * 60, description="At most a year")
    business_time: bool = Field(default=True, description="False: calendar time, every minute counts")
    calendar: str | None = Field(default=None, description="Calendar name; default: the policy's")


class EscalationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: Trigger
    metric: Metric | None = None
    action: EscalationAction


class PolicyVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: AwareDatetime | None = Field(default=None, description="Default: now")
    calendar: str | None = Field(default=None, description="The contract's service calendar (by name)")
    warn_at_percent: int = Field(default=75, ge=1, le=99)
    pause_on: list[PauseCause] = Field(default_factory=lambda: list(PauseCause))
    targets: list[TargetIn] = Field(min_length=1, max_length=200)
    escalations: list[EscalationIn] = Field(default_factory=list, max_length=20)


class PolicyCreate(PolicyVersionIn):
    name: str = Field(min_length=1, max_length=120)
    tenant_id: uuid.UUID | None = None


class TargetOut(BaseModel):
    metric: Metric
    priority: Priority | None
    queue_id: uuid.UUID | None
    task_kind: str | None
    minutes: int
    calendar_id: uuid.UUID | None


class PolicyVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    version: int
    effective_from: datetime
    calendar_id: uuid.UUID | None
    warn_at_percent: int
    pause_on: list[PauseCause]
    targets: list[TargetOut]
    escalations: list[dict[str, Any]]


class PolicyOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    versions: list[PolicyVersionOut]


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: SegmentKind
    at: datetime
    cause: str | None
    elapsed_seconds: int
    target_seconds: int
    due_at: datetime | None


class ClockOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    task_id: uuid.UUID
    queue_id: uuid.UUID
    metric: Metric
    cycle: int
    priority: Priority
    state: ClockState
    target_seconds: int
    elapsed_seconds: int
    started_at: datetime
    due_at: datetime | None
    warn_at: datetime | None
    warned_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None
    outcome: Outcome | None
    pause_cause: PauseCause | None
    paused_client_seconds: int
    paused_third_party_seconds: int
    policy_version_id: uuid.UUID
    calendar_version_id: uuid.UUID | None


class ClockWithLog(ClockOut):
    log: list[SegmentOut]


class AttainmentRow(BaseModel):
    period: str  # 2026-11, 2026-W47 or 2026-11-23
    tenant_id: uuid.UUID
    queue_id: uuid.UUID
    metric: Metric
    priority: Priority
    met: int
    breached: int
    attainment: float | None  # met / (met + breached); None when nothing was settled
    paused_waiting_on_client_seconds: int
    paused_waiting_on_third_party_seconds: int
