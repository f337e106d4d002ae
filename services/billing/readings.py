"""What closing a period reads, for a batch of clients at once.

A close of a thousand clients must cost about one pass over the period's usage, not a
thousand round trips (bench/billing_close.py): so contracts, last cut-offs, usage totals,
late usage and SLA attainment are each read with one statement for the whole batch
(usage and attainment once per billing timezone, since a period's bounds depend on it),
through the scope narrowed to the batch. Only a client whose contract changed during the
period costs a statement per version in force. The database sums the usage; nothing here
holds the period's events.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.billing import rating
from services.billing.models import (
    Contract,
    ContractVersion,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    IssuingEntity,
    LineKind,
)
from services.core.time import month_bounds, month_of
from services.metering.models import UsageEvent
from services.sla import reports
from tenants.models import Organization
from tenants.scoping import narrowed_to

UTC = ZoneInfo("UTC")
FEW_CLIENTS = 50


@dataclass(frozen=True)
class Group:
    """Usage of one kind in one slice of the period, summed by the database."""

    metric: str
    task_kind: str | None
    language: str | None
    out_of_hours: bool
    unit_price: Decimal | None
    reason: str | None
    quantity: Decimal


@dataclass(frozen=True)
class Late:
    """Usage of an earlier period recorded after that period's invoice was finalised."""

    occurred_at: datetime
    metric: str
    task_kind: str | None
    unit_price: Decimal | None
    reason: str | None
    quantity: Decimal


@dataclass(frozen=True)
class Slice:
    """Days of the period under one contract version: [first, end)."""

    version: ContractVersion
    first: date
    end: date


@dataclass
class Client:
    """One client's side of a close: its contract, its period, what it used."""

    organization: Organization
    contract: Contract
    versions: list[ContractVersion]
    zone: str
    start: datetime  # the period in UTC, from midnight to midnight in ``zone``
    end: datetime
    slices: list[Slice]
    usage: dict[date, list[Group]] = field(default_factory=dict)  # by slice's first day
    late: list[Late] = field(default_factory=list)
    previous_cutoff: datetime | None = None
    # What earlier finalised invoices billed, by (period, metric, price's task kind): where
    # late usage of those periods continues their tiers.
    billed: dict[tuple[str, str, str | None], Decimal] = field(default_factory=dict)
    attainment: dict[str, tuple[int, int]] = field(default_factory=dict)  # SLA metric -> (met, breached)

    @property
    def first_day(self) -> date:
        return _day(self.start, self.zone)

    @property
    def days(self) -> int:
        """The period's days in its timezone (a DST change makes one UTC day 23 or 25 hours)."""
        return (_day(self.end, self.zone) - self.first_day).days


@dataclass
class Readings:
    period: str
    cutoff: datetime
    clients: dict[uuid.UUID, Client]
    entities: dict[uuid.UUID, IssuingEntity]


def read(session: Session, tenant_ids: Iterable[uuid.UUID], period: str, cutoff: datetime) -> Readings:
    """Everything the close of ``period`` needs of these clients (those without a contract
    in force during it are left out), as the usage recorded up to ``cutoff`` stands."""
    wanted = set(tenant_ids)
    with narrowed_to(session, wanted):
        clients = _clients(session, period)
        _previous_cutoffs(session, clients, period)
    by_zone: dict[str, list[Client]] = defaultdict(list)
    for client in clients.values():
        by_zone[client.zone].append(client)
    for members in by_zone.values():
        _usage(session, members, cutoff)
        _attainment(session, members)
    _late(session, [c for c in clients.values() if c.previous_cutoff is not None], cutoff)
    entities = {entity.id: entity for entity in session.scalars(select(IssuingEntity))}
    return Readings(period, cutoff, clients, entities)


def _clients(session: Session, period: str) -> dict[uuid.UUID, Client]:
    organizations = {o.id: o for o in session.scalars(select(Organization))}
    versions: dict[uuid.UUID, list[ContractVersion]] = defaultdict(list)
    for version in session.scalars(
        select(ContractVersion).order_by(ContractVersion.effective_from, ContractVersion.version)
    ):
        versions[version.contract_id].append(version)
    clients = {}
    for contract in session.scalars(select(Contract)):
        own = versions.get(contract.id)
        if not own:
            continue
        zone = own[-1].billing_timezone
        start, end = month_bounds(period, zone)
        first_day, end_day = _day(start, zone), _day(end, zone)
        slices = [
            Slice(own[index], first, until)
            for index, first, until in rating.days_in_force(
                [v.effective_from for v in own], first_day, end_day
            )
        ]
        if slices:
            clients[contract.tenant_id] = Client(
                organizations[contract.tenant_id], contract, own, zone, start, end, slices
            )
    return clients


def _previous_cutoffs(session: Session, clients: dict[uuid.UUID, Client], period: str) -> None:
    """The cut-off of each client's last finalised invoice before ``period``."""
    found = session.execute(
        select(Invoice.tenant_id, func.max(Invoice.cutoff_at))
        .where(
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.period < period,
            Invoice.status.not_in([InvoiceStatus.DRAFT, InvoiceStatus.VOID]),
        )
        .group_by(Invoice.tenant_id)
    )
    for tenant_id, cutoff in found:
        if tenant_id in clients:
            clients[tenant_id].previous_cutoff = cutoff


_DIMENSIONS = (
    UsageEvent.metric,
    UsageEvent.task_kind,
    UsageEvent.language,
    UsageEvent.out_of_hours,
    UsageEvent.unit_price,
    UsageEvent.reason,
)


def _usage(session: Session, clients: list[Client], cutoff: datetime) -> None:
    """Clients of one billing timezone: one statement for those under one version all
    period, one per slice for the others."""
    whole = [c for c in clients if len(c.slices) == 1]
    if whole:
        sums = _sums(session, [c.organization.id for c in whole], whole[0].start, whole[0].end, cutoff)
        for client in whole:
            client.usage[client.slices[0].first] = sums.get(client.organization.id, [])
    for client in clients:
        if len(client.slices) == 1:
            continue
        for part in client.slices:
            since, until = _instant(part.first, client.zone), _instant(part.end, client.zone)
            sums = _sums(session, [client.organization.id], since, until, cutoff)
            client.usage[part.first] = sums.get(client.organization.id, [])


def _sums(
    session: Session, tenant_ids: list[uuid.UUID], since: datetime, until: datetime, cutoff: datetime
) -> dict[uuid.UUID, list[Group]]:
    query = (
        select(UsageEvent.tenant_id, *_DIMENSIONS, func.sum(UsageEvent.quantity))
        .where(
            UsageEvent.occurred_at >= since, UsageEvent.occurred_at < until, UsageEvent.recorded_at <= cutoff
        )
        .group_by(UsageEvent.tenant_id, *_DIMENSIONS)
    )
    found: dict[uuid.UUID, list[Group]] = defaultdict(list)
    wanted = set(tenant_ids)
    # A client's events are spread over the whole table (they arrive mixed with everyone
    # else's): for many clients, one pass over the period beats walking the index for each.
    with narrowed_to(session, wanted if len(wanted) <= FEW_CLIENTS else None):
        for tenant_id, metric, kind, language, ooh, price, reason, total in session.execute(query):
            if total and tenant_id in wanted:
                found[tenant_id].append(
                    Group(
                        metric, kind, language, bool(ooh), price, reason if price is not None else None, total
                    )
                )
    for groups in found.values():  # the same order on every database (NULLs sort differently)
        groups.sort(
            key=lambda g: (g.metric, g.task_kind or "", g.language or "", g.out_of_hours, g.unit_price or 0)
        )
    return found


def _late(session: Session, clients: list[Client], cutoff: datetime) -> None:
    """Usage dated before each client's period and recorded after its last cut-off: few
    rows by nature, read as rows (through the index on recorded_at) in one statement."""
    if not clients:
        return
    by_tenant = {c.organization.id: c for c in clients}
    earliest = min(c.previous_cutoff for c in clients if c.previous_cutoff is not None)
    latest_start = max(c.start for c in clients)
    query = select(
        UsageEvent.tenant_id,
        UsageEvent.occurred_at,
        UsageEvent.recorded_at,
        UsageEvent.metric,
        UsageEvent.task_kind,
        UsageEvent.unit_price,
        UsageEvent.reason,
        UsageEvent.quantity,
    ).where(
        UsageEvent.recorded_at > earliest,
        UsageEvent.recorded_at <= cutoff,
        UsageEvent.occurred_at < latest_start,
    )
    with narrowed_to(session, set(by_tenant)):
        rows = session.execute(query).all()
    for tenant_id, occurred_at, recorded_at, metric, kind, price, reason, quantity in rows:
        client = by_tenant[tenant_id]
        assert client.previous_cutoff is not None
        if occurred_at < client.start and recorded_at > client.previous_cutoff:
            client.late.append(Late(occurred_at, metric, kind, price, reason, quantity))
    for client in clients:
        client.late.sort(key=lambda late: (late.occurred_at, late.metric))
    _billed(session, [c for c in clients if c.late])


def _billed(session: Session, clients: list[Client]) -> None:
    """The usage and adjustment lines of the finalised invoices of the periods late usage
    belongs to (a handful of rows)."""
    if not clients:
        return
    by_tenant = {c.organization.id: c for c in clients}
    periods = {month_of(late.occurred_at, c.zone) for c in clients for late in c.late}
    query = (
        select(
            Invoice.tenant_id, Invoice.period, InvoiceLine.metric, InvoiceLine.details, InvoiceLine.quantity
        )
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .where(
            Invoice.period.in_(periods),
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.status.not_in([InvoiceStatus.DRAFT, InvoiceStatus.VOID]),
            InvoiceLine.kind.in_([LineKind.USAGE, LineKind.ADJUSTMENT]),
        )
    )
    with narrowed_to(session, set(by_tenant)):
        rows = session.execute(query).all()
    for tenant_id, period, metric, details, quantity in rows:
        # An adjustment line is billed on a later invoice, but counts for its own period.
        key = (details.get("period", period), metric, details.get("task_kind"))
        billed = by_tenant[tenant_id].billed
        billed[key] = billed.get(key, Decimal(0)) + quantity


def _attainment(session: Session, clients: list[Client]) -> None:
    """SLA outcomes settled in the period: the SLA report's own numbers (the same the
    client reads on its SLA page), for every client of one timezone in one statement."""
    by_tenant = {c.organization.id: c for c in clients}
    where = reports.ReportFilter(since=clients[0].start, until=clients[0].end)
    totals: dict[tuple[uuid.UUID, str], list[int]] = defaultdict(lambda: [0, 0])
    with narrowed_to(session, set(by_tenant)):
        for row in reports.attainment_of(session, where):
            total = totals[(row.tenant_id, row.metric.value)]
            total[0] += row.met
            total[1] += row.breached
    for (tenant_id, metric), (met, breached) in totals.items():
        by_tenant[tenant_id].attainment[metric] = (met, breached)


def _day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def _instant(day: date, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)
