"""Defining calendars and contract policies, and their versions (the operator's work).

A new version applies from its effective date to clocks that start after it; running
clocks keep the version they started under.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from services.core.time import utcnow
from services.sla import policies
from services.sla.calendars import BusinessCalendar, CalendarSpecError
from services.sla.models import (
    SlaCalendar,
    SlaCalendarVersion,
    SlaPolicy,
    SlaPolicyVersion,
)
from services.sla.schemas import CalendarCreate, CalendarVersionIn, PolicyCreate, PolicyVersionIn
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import configuration_changed, fetch, narrowed_to

Version = TypeVar("Version", SlaCalendarVersion, SlaPolicyVersion)


def _client_tenant(session: Session, principal: Principal, tenant_id: uuid.UUID | None) -> uuid.UUID:
    """The client a definition is for. The contract's SLA is the operator's to set (an
    account manager for the clients of their portfolio), never the client's own."""
    _require_operator(principal)
    if tenant_id is None:
        raise ValidationFailed(errors=[FieldError("/tenant_id", "name the client organisation")])
    organization = fetch(session, Organization, tenant_id)
    if organization is None or organization.kind is not OrgKind.CLIENT:
        raise NotFound("no such client organisation", errors=[FieldError("/tenant_id", "no such client")])
    return organization.id


def _require_operator(principal: Principal) -> None:
    principal.require(Permission.SLA_MANAGE)
    if principal.org_kind is not OrgKind.OPERATOR:
        raise Forbidden("SLA calendars and policies are set by the operator")


def checked_spec(spec: dict[str, Any], pointer: str) -> dict[str, Any]:
    """A valid spec with open time ahead (a calendar whose openings are all past would
    leave clocks without a due time)."""
    try:
        calendar = BusinessCalendar.from_spec(spec)
        calendar.next_open(utcnow())
    except CalendarSpecError as exc:
        raise ValidationFailed(errors=[FieldError(pointer + exc.field, exc.message)]) from None
    except ValueError as exc:
        raise ValidationFailed(errors=[FieldError(pointer, str(exc))]) from None
    return calendar.spec


def _reachable(session: Session, calendar_id: str, minutes: int) -> bool:
    """Whether a target of ``minutes`` on the calendar's current rules ends within the
    calendar's search horizon (a clock could otherwise never be due)."""
    version = policies.calendar_version_in_force(session, uuid.UUID(calendar_id), utcnow())
    if version is None:
        return False
    try:
        policies.business_calendar(session, version.id).add(utcnow(), timedelta(minutes=minutes))
    except ValueError:
        return False
    return True


def create_calendar(session: Session, principal: Principal, data: CalendarCreate) -> SlaCalendar:
    tenant_id = _client_tenant(session, principal, data.tenant_id)
    spec = checked_spec(data.spec, "/spec")
    with narrowed_to(session, tenant_id):
        if session.scalars(select(SlaCalendar.id).where(SlaCalendar.name == data.name)).first():
            raise Conflict(f"a calendar named {data.name} exists", errors=[FieldError("/name", "taken")])
    calendar = SlaCalendar(tenant_id=tenant_id, name=data.name)
    session.add(calendar)
    session.flush()
    session.add(_calendar_version(calendar, 1, data.effective_from, spec))
    session.flush()
    return calendar


def add_calendar_version(
    session: Session, principal: Principal, calendar_id: uuid.UUID, data: CalendarVersionIn
) -> SlaCalendarVersion:
    calendar = get_calendar(session, principal, calendar_id)  # a foreign one is not found
    _require_operator(principal)
    spec = checked_spec(data.spec, "/spec")
    latest = calendar_versions(session, [calendar.id])[calendar.id][-1]
    effective_from = _effective_from(data.effective_from, latest.effective_from)
    version = _calendar_version(calendar, latest.version + 1, effective_from, spec)
    session.add(version)
    session.flush()
    return version


def _calendar_version(
    calendar: SlaCalendar, number: int, effective_from: datetime | None, spec: dict[str, Any]
) -> SlaCalendarVersion:
    return SlaCalendarVersion(
        tenant_id=calendar.tenant_id,
        calendar_id=calendar.id,
        version=number,
        effective_from=_whole_second(effective_from or utcnow()),
        spec=spec,
    )


def _whole_second(moment: datetime) -> datetime:
    """Versions take effect at a whole second, as clocks are timed (clocks.to_second)."""
    return moment.replace(microsecond=0)


def _effective_from(wanted: datetime | None, previous: datetime) -> datetime:
    effective_from = _whole_second(wanted or utcnow())
    if effective_from < previous:
        raise ValidationFailed(
            errors=[FieldError("/effective_from", "may not be before the previous version's")]
        )
    return effective_from


def get_calendar(session: Session, principal: Principal, calendar_id: uuid.UUID) -> SlaCalendar:
    principal.require(Permission.SLA_READ)
    calendar = fetch(session, SlaCalendar, calendar_id)
    if calendar is None:
        raise NotFound("no such calendar")
    return calendar


def list_calendars(session: Session, principal: Principal) -> Sequence[SlaCalendar]:
    principal.require(Permission.SLA_READ)
    return session.scalars(select(SlaCalendar).order_by(SlaCalendar.name, SlaCalendar.id)).all()


def calendars_page(
    session: Session, principal: Principal, page: PageRequest
) -> tuple[Sequence[SlaCalendar], str | None]:
    principal.require(Permission.SLA_READ)
    return fetch_page(session, select(SlaCalendar), SlaCalendar.id, page)


def calendar_versions(
    session: Session, calendar_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[SlaCalendarVersion]]:
    """The versions of each calendar, oldest first, in one query."""
    return _versions_of(session, SlaCalendarVersion, "calendar_id", calendar_ids)


def create_policy(session: Session, principal: Principal, data: PolicyCreate) -> SlaPolicy:
    tenant_id = _client_tenant(session, principal, data.tenant_id)
    with narrowed_to(session, tenant_id):
        if session.scalars(select(SlaPolicy.id)).first():
            raise Conflict("the organisation has a policy already: add a version to it")
        terms = _checked_terms(session, data)
        policy = SlaPolicy(tenant_id=tenant_id, name=data.name)
        session.add(policy)
        session.flush()
        session.add(_policy_version(policy, 1, _whole_second(data.effective_from or utcnow()), terms))
        session.flush()
    configuration_changed(session)  # this transaction's tasks read the policy afresh
    return policy


def add_policy_version(
    session: Session, principal: Principal, policy_id: uuid.UUID, data: PolicyVersionIn
) -> SlaPolicyVersion:
    policy = get_policy(session, principal, policy_id)
    _require_operator(principal)
    with narrowed_to(session, policy.tenant_id):
        terms = _checked_terms(session, data)
        latest = policy_versions(session, [policy.id])[policy.id][-1]
        effective_from = _effective_from(data.effective_from, latest.effective_from)
        version = _policy_version(policy, latest.version + 1, effective_from, terms)
        session.add(version)
        session.flush()
    configuration_changed(session)  # this transaction's tasks read the policies afresh
    return version


def _checked_terms(session: Session, data: PolicyVersionIn) -> dict[str, Any]:
    """Resolve calendar names to ids; every problem is reported at once."""
    errors: list[FieldError] = []
    calendars = {c.name: c.id for c in session.scalars(select(SlaCalendar))}

    def calendar_id(name: str | None, pointer: str) -> str | None:
        if name is None:
            return None
        if name not in calendars:
            errors.append(FieldError(pointer, f"no calendar named {name}"))
            return None
        return str(calendars[name])

    default_calendar = calendar_id(data.calendar, "/calendar")
    targets = []
    for index, target in enumerate(data.targets):
        pointer = f"/targets/{index}"
        named = calendar_id(target.calendar, f"{pointer}/calendar") if target.calendar else None
        chosen = named or default_calendar
        if target.business_time and chosen is None and not any(e.pointer.startswith(pointer) for e in errors):
            errors.append(FieldError(f"{pointer}/calendar", "business time needs a calendar"))
        elif target.business_time and chosen and not _reachable(session, chosen, target.minutes):
            errors.append(
                FieldError(f"{pointer}/minutes", "the calendar is not open that long within 10 years")
            )
        targets.append(
            {
                "metric": target.metric.value,
                "priority": target.priority.value if target.priority else None,
                "queue_id": str(target.queue_id) if target.queue_id else None,
                "task_kind": target.task_kind,
                "minutes": target.minutes,
                "calendar_id": chosen if target.business_time else None,
            }
        )
    if errors:
        raise ValidationFailed(errors=errors)
    return {
        "calendar_id": uuid.UUID(default_calendar) if default_calendar else None,
        "warn_at_percent": data.warn_at_percent,
        "pause_on": sorted(c.value for c in data.pause_on),
        "targets": targets,
        "escalations": [
            {"on": e.on.value, "metric": e.metric.value if e.metric else None, "action": e.action.value}
            for e in data.escalations
        ],
    }


def _policy_version(
    policy: SlaPolicy, number: int, effective_from: datetime, terms: dict[str, Any]
) -> SlaPolicyVersion:
    return SlaPolicyVersion(
        tenant_id=policy.tenant_id,
        policy_id=policy.id,
        version=number,
        effective_from=effective_from,
        **terms,
    )


def get_policy(session: Session, principal: Principal, policy_id: uuid.UUID) -> SlaPolicy:
    principal.require(Permission.SLA_READ)
    policy = fetch(session, SlaPolicy, policy_id)
    if policy is None:
        raise NotFound("no such policy")
    return policy


def list_policies(session: Session, principal: Principal) -> Sequence[SlaPolicy]:
    principal.require(Permission.SLA_READ)
    return session.scalars(select(SlaPolicy).order_by(SlaPolicy.name, SlaPolicy.id)).all()


def policies_page(
    session: Session, principal: Principal, page: PageRequest
) -> tuple[Sequence[SlaPolicy], str | None]:
    principal.require(Permission.SLA_READ)
    return fetch_page(session, select(SlaPolicy), SlaPolicy.id, page)


def policy_versions(session: Session, policy_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[SlaPolicyVersion]]:
    """The versions of each policy, oldest first, in one query."""
    return _versions_of(session, SlaPolicyVersion, "policy_id", policy_ids)


def _versions_of(
    session: Session, model: type[Version], parent: str, parent_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Version]]:
    found: dict[uuid.UUID, list[Version]] = {parent_id: [] for parent_id in parent_ids}
    in_parents = getattr(model, parent).in_(parent_ids)
    for version in session.scalars(select(model).where(in_parents).order_by(model.version)):
        found[getattr(version, parent)].append(version)
    return found
