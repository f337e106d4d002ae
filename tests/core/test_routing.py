"""Every endpoint that takes the request session ends its unit of work itself: committed
when it returns, rolled back when it raises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.core import deps
from services.core.database import Database
from services.core.deps import DbSession
from services.core.routing import UnitOfWorkRoute
from services.core.settings import Settings
from tenants.models import Organization
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind


def _takes_session(dependant: Dependant) -> bool:
    return any(d.call is deps._session or _takes_session(d) for d in dependant.dependencies)


def _routes(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI keeps included routers whole
        yield from _routes(included.routes) if included is not None else [route]


def test_every_route_with_a_session_commits_in_its_own_thread(app: FastAPI) -> None:
    with_session = [r for r in _routes(app.routes) if isinstance(r, APIRoute) and _takes_session(r.dependant)]
    assert len(with_session) > 50
    assert [r.path for r in with_session if not isinstance(r, UnitOfWorkRoute)] == []


@pytest.fixture
def scratch(db: Database, settings: Settings) -> Iterator[TestClient]:
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.post("/orgs/{name}")
    def add(name: str, session: DbSession, fail: bool = False) -> dict[str, str]:
        bind(session, AccessScope.everything())
        session.add(
            Organization(
                name=name,
                slug=name,
                kind=OrgKind.CLIENT,
                country="FR",
                default_locale="fr",
                timezone="Europe/Paris",
                currency="EUR",
            )
        )
        session.flush()
        if fail:
            raise HTTPException(409)
        return {"name": name}

    app = FastAPI()
    app.state.db, app.state.settings = db, settings
    app.include_router(router)
    with TestClient(app) as client:
        yield client


def _names(db: Database) -> list[str]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return list(session.scalars(select(Organization.name).where(Organization.name.like("uow-%"))))


def test_a_returning_endpoint_commits_and_a_raising_one_rolls_back(scratch: TestClient, db: Database) -> None:
    assert scratch.post("/orgs/uow-kept").status_code == 200
    assert scratch.post("/orgs/uow-dropped", params={"fail": True}).status_code == 409
    assert _names(db) == ["uow-kept"]
