"""Every endpoint that takes the request session ends its unit of work itself: committed
when it returns, rolled back when it raises."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from services.core import deps
from services.core.database import Database, make_engine
from services.core.deps import DbSession
from services.core.route_class import UnitOfWorkRoute
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


class Named(BaseModel):
    name: str


@pytest.fixture
def scratch(db: Database, settings: Settings) -> Iterator[TestClient]:
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.post("/orgs/{name}")
    def add(name: str, session: DbSession, fail: bool = False) -> JSONResponse:
        _add(session, name)
        if fail:
            raise HTTPException(409)
        return JSONResponse({"name": name})

    @router.post("/orgs/{name}/model", response_model=Named)
    def add_answering_a_model(name: str, session: DbSession) -> dict[str, str]:
        _add(session, name)
        return {"nom": name}  # not a Named: validating the answer fails after the endpoint

    def _add(session: Session, name: str) -> None:
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

    app = FastAPI()
    app.state.db, app.state.settings = db, settings
    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _names(db: Database) -> list[str]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return list(session.scalars(select(Organization.name).where(Organization.name.like("uow-%"))))


def test_a_returning_endpoint_commits_and_a_raising_one_rolls_back(scratch: TestClient, db: Database) -> None:
    assert scratch.post("/orgs/uow-kept").status_code == 200
    assert scratch.post("/orgs/uow-dropped", params={"fail": True}).status_code == 409
    assert _names(db) == ["uow-kept"]


def test_an_answer_that_fails_validation_rolls_back(scratch: TestClient, db: Database) -> None:
    assert scratch.post("/orgs/uow-invalid/model").status_code == 500
    assert _names(db) == []


@pytest.mark.anyio
async def test_failing_requests_never_starve_the_connection_pool(tmp_path: Path) -> None:
    """Ending a unit of work must not queue for a thread behind requests that wait for a
    connection the ending one holds."""
    url = f"sqlite:///{tmp_path / 'pool.sqlite'}"
    engine = make_engine(url, poolclass=QueuePool, pool_size=2, max_overflow=0, pool_timeout=5)
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.get("/missing")
    def missing(session: DbSession) -> None:
        session.execute(text("SELECT 1"))  # holds a connection
        raise HTTPException(404)

    app = FastAPI()
    app.state.db = Database(url, bind=engine)
    app.include_router(router)
    anyio.to_thread.current_default_thread_limiter().total_tokens = 3  # fewer threads than requests
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        with anyio.fail_after(30):
            answers = await asyncio.gather(*(http.get("/missing") for _ in range(20)))
    engine.dispose()
    assert [a.status_code for a in answers] == [404] * 20
