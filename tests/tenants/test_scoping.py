"""The application layer of isolation: the one scoping mechanism."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import literal, select

from services.core.database import Database
from services.identity.models import ApiClient, User
from services.work.models import Queue
from tenants.models import Organization
from tenants.scoping import (
    AccessScope,
    CrossTenantWrite,
    ScopedRead,
    UnscopedAccess,
    bind,
    fetch,
    narrowed_to,
)
from tests.factories import make_queue, make_tenant

ROOT = Path(__file__).resolve().parents[2]
# A comparison on a tenant column is a tenant filter; only tenants/ may write one.
HAND_WRITTEN_FILTER = re.compile(
    r"\.tenant_id\s*(==|!=|\.in_\(|\.is_\()|tenant_id\s*=\s*:|WHERE\s+tenant_id", re.I
)


def test_no_hand_written_tenant_filter_outside_tenants() -> None:
    offenders = []
    for path in (ROOT / "services").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if HAND_WRITTEN_FILTER.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_filter_detector_catches_a_filter() -> None:
    assert HAND_WRITTEN_FILTER.search("select(Task).where(Task.tenant_id == principal.org_id)")
    assert not HAND_WRITTEN_FILTER.search("Membership(tenant_id=organization.id, user_id=user.id)")


def test_a_session_without_scope_refuses_tenant_queries(db: Database) -> None:
    with db.session() as session, pytest.raises(UnscopedAccess):
        session.scalars(select(User)).all()


def test_a_scoped_session_sees_only_its_tenants(db: Database) -> None:
    a, b = make_tenant(db), make_tenant(db)
    with db.session() as session:
        bind(session, AccessScope.tenants({a.organization.id}))
        organizations = session.scalars(select(Organization)).all()
        clients = session.scalars(select(ApiClient)).all()
        assert [o.id for o in organizations] == [a.organization.id]
        assert {c.tenant_id for c in clients} == {a.organization.id}
        assert fetch(session, Organization, b.organization.id) is None


def test_writing_into_another_tenant_is_refused(db: Database) -> None:
    a, b = make_tenant(db), make_tenant(db)
    with pytest.raises(CrossTenantWrite), db.session() as session:
        bind(session, AccessScope.tenants({a.organization.id}))
        session.add(
            ApiClient(tenant_id=b.organization.id, client_id="x", secret_hash="0" * 64, name="n", scopes="")
        )
        session.flush()


def test_authentication_scope_reads_identity_but_refuses_writes(db: Database) -> None:
    make_tenant(db)
    with db.session() as session:
        bind(session, AccessScope.authentication())
        assert session.scalars(select(User)).first() is not None
        with pytest.raises(CrossTenantWrite):
            user = session.scalars(select(User)).first()
            assert user is not None
            user.display_name = "changed"
            session.flush()
        session.rollback()


def test_tenant_tables_used_only_inside_a_query_are_scoped_too(db: Database) -> None:
    from sqlalchemy import exists, func, true

    a, b = make_tenant(db), make_tenant(db)
    with db.session() as session:
        bind(session, AccessScope.tenants({a.organization.id}))
        assert session.scalar(select(func.count()).select_from(User)) == 1
        hidden = exists().where(User.email == b.admin_email)
        assert session.scalars(select(Organization.id).where(hidden)).all() == []
        with pytest.raises(UnscopedAccess):  # no ORM entity to scope by: refused, never unfiltered
            session.scalar(select(hidden))
        joined = select(Organization.name).join(User, true()).where(User.email == b.admin_email)
        assert session.scalars(joined).all() == []
        assert session.scalar(select(select(func.count(User.id)).scalar_subquery())) == 1


def test_an_unscoped_session_refuses_counts_and_exists_too(db: Database) -> None:
    from sqlalchemy import exists, func

    make_tenant(db)
    with db.session() as session:
        with pytest.raises(UnscopedAccess):
            session.scalar(select(func.count()).select_from(ApiClient))
        with pytest.raises(UnscopedAccess):
            session.scalars(select(Organization.id).where(exists().where(ApiClient.name == "x"))).all()


def test_bulk_writes_cannot_cross_tenants(db: Database) -> None:
    import uuid as uuid_module

    from sqlalchemy import insert, update

    a, b = make_tenant(db), make_tenant(db)
    with db.session() as session:
        bind(session, AccessScope.tenants({a.organization.id}))
        with pytest.raises(CrossTenantWrite):
            session.execute(update(ApiClient).values(tenant_id=b.organization.id))
        with pytest.raises(CrossTenantWrite):
            session.execute(
                insert(ApiClient).values(
                    id=uuid_module.uuid4(),
                    tenant_id=b.organization.id,
                    client_id="evil",
                    secret_hash="0",
                    name="evil",
                    scopes="",
                )
            )
        renamed = session.execute(update(ApiClient).values(name="renamed"))
        assert renamed.rowcount == 1  # type: ignore[attr-defined]  # A's client only
    with db.session() as session:
        bind(session, AccessScope.authentication())
        assert session.execute(update(ApiClient).values(name="pwned")).rowcount == 0  # type: ignore[attr-defined]


def test_a_bulk_update_or_delete_also_changes_the_objects_the_session_holds(db: Database) -> None:
    """SQLAlchemy evaluates the criteria in Python on loaded objects (synchronize_session)."""
    from sqlalchemy import delete, inspect, update

    tenant = make_tenant(db)
    with db.session() as session:
        bind(session, AccessScope.tenants({tenant.organization.id}))
        client = session.scalars(select(ApiClient)).one()
        session.execute(update(ApiClient).where(ApiClient.id == client.id).values(name="changed"))
        assert client.name == "changed"
        session.execute(delete(ApiClient).where(ApiClient.id == client.id))
        assert inspect(client).was_deleted or client not in session


def test_narrowing_never_narrows_the_database_settings(db: Database, is_postgres: bool) -> None:
    """The transaction may begin inside the block (a principal remembered without I/O):
    row-level security still gets the outer scope."""
    from sqlalchemy import text

    a, b = make_tenant(db), make_tenant(db)
    with db.session() as session:
        bind(session, AccessScope.tenants({a.organization.id, b.organization.id}))
        with narrowed_to(session, a.organization.id):
            assert [c.tenant_id for c in session.scalars(select(ApiClient))] == [a.organization.id]
            if is_postgres:
                settings = session.execute(text("SELECT current_setting('bpo.tenant_ids')")).scalar_one()
                assert set(settings.split(",")) == {str(a.organization.id), str(b.organization.id)}
        assert {c.tenant_id for c in session.scalars(select(ApiClient))} == {
            a.organization.id,
            b.organization.id,
        }


# ---------------------------------------------------------------- reads of every request

_CLIENTS = ScopedRead(select(ApiClient.__table__.c.tenant_id))
_QUEUES = ScopedRead(select(Queue.__table__.c.tenant_id))


def test_a_scoped_read_sees_only_the_tenants_of_the_scope(db: Database) -> None:
    a, b = make_tenant(db), make_tenant(db)
    ours = {a.organization.id, b.organization.id}
    with db.session() as session:
        bind(session, AccessScope.tenants({a.organization.id}))
        assert set(_CLIENTS.execute(session).scalars()) == {a.organization.id}
        bind(session, AccessScope.everything())
        assert set(_CLIENTS.execute(session).scalars()) >= ours
        with narrowed_to(session, b.organization.id):
            assert set(_CLIENTS.execute(session).scalars()) == {b.organization.id}


def test_a_scoped_read_without_a_scope_is_refused(db: Database) -> None:
    with db.session() as session, pytest.raises(UnscopedAccess):
        _CLIENTS.execute(session)


def test_while_authenticating_a_scoped_read_sees_identity_tables_only(db: Database) -> None:
    tenant = make_tenant(db)
    make_queue(db, tenant.organization)
    with db.session() as session:
        bind(session, AccessScope.authentication())
        assert tenant.organization.id in set(_CLIENTS.execute(session).scalars())
        assert list(_QUEUES.execute(session)) == []


def test_a_scoped_read_sees_what_the_session_has_not_flushed_yet(db: Database) -> None:
    tenant = make_tenant(db)
    with db.session() as session:
        bind(session, AccessScope.tenants({tenant.organization.id}))
        before = len(list(_QUEUES.execute(session)))
        session.add(Queue(tenant_id=tenant.organization.id, name="Pending", task_kind="support_ticket"))
        assert len(list(_QUEUES.execute(session))) == before + 1


def test_a_scoped_read_reads_exactly_one_tenant_table() -> None:
    with pytest.raises(ValueError, match="one tenant-owned table"):
        ScopedRead(select(literal(1)))
    with pytest.raises(ValueError, match="one tenant-owned table"):
        ScopedRead(select(ApiClient.__table__.c.id, Queue.__table__.c.id))
