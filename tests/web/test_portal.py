"""The client portal: the same rules as the API, for a person in a browser."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.database import Database
from services.core.settings import Settings
from services.notify import relay, signing
from tenants.principal import OrgKind, Role
from tests.factories import (
    PASSWORD,
    PDF,
    make_attachment,
    make_delivery,
    make_import,
    make_org,
    make_queue,
    make_task,
    make_user,
    make_webhook_endpoint,
)
from tests.notify.receiver import Receiver

HTML = {"Accept": "text/html"}


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


class Portal:
    """A signed-in person: gets pages and posts their forms with the CSRF token."""

    def __init__(self, client: TestClient, email: str) -> None:
        self.client = client
        login = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": _token(client.get("/login").text)},
            follow_redirects=False,
        )
        assert login.status_code == 303, login.text
        self.csrf = client.cookies["bpo_csrf"]

    def get(self, url: str, **params: Any) -> Any:
        return self.client.get(url, headers=HTML, params=params)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.client.post(
            url,
            data={"csrf_token": self.csrf, **(data or {})},
            headers=HTML,
            follow_redirects=False,
            **kwargs,
        )


@pytest.fixture
def person(client: TestClient, db: Database) -> tuple[Portal, Any]:
    organization = make_org(db, OrgKind.CLIENT, country="FR")
    email = make_user(db, organization, [Role.CLIENT_ADMIN], locale="en")
    return Portal(client, email), organization


def test_pages_need_a_signed_in_person(client: TestClient) -> None:
    answer = client.get("/portal/tasks", headers=HTML, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/portal/tasks"


def test_a_queue_is_created_from_its_page(person: tuple[Portal, Any]) -> None:
    portal, _org = person
    answer = portal.post("/portal/queues", {"name": "Litiges", "task_kind": "claim", "languages": "fr, de"})
    assert answer.status_code == 303
    page = portal.get("/portal/queues").text
    assert "Litiges" in page and "fr, de" in page
    bad = portal.post("/portal/queues", {"name": "X", "task_kind": "claim", "languages": "not a tag"})
    assert bad.status_code == 200 and "not a BCP 47 language tag" in bad.text


def test_the_submission_form_follows_the_kind_schema(person: tuple[Portal, Any], db: Database) -> None:
    portal, organization = person
    queue = make_queue(db, organization, task_kind="claim")
    form = portal.get("/portal/tasks/new", queue_id=str(queue.id)).text
    assert 'name="payload.claim_type"' in form and "<select" in form  # an enum is a choice
    assert 'name="payload.claimed_amount_minor" type="number"' in form
    assert 'name="payload.incident_date" type="date"' in form
    assert re.search(r'<textarea id="f-description" name="payload.description"', form)

    bad = portal.post(
        "/portal/tasks",
        {"queue_id": str(queue.id), "title": "Pare-brise", "payload.claim_type": "insurance",
         "payload.claimed_amount_minor": "douze"},
    )  # fmt: skip
    assert bad.status_code == 422
    assert (
        'data-testid="error-claimed_amount_minor"' in bad.text
        and 'data-testid="error-description"' in bad.text
    )
    assert 'value="Pare-brise"' in bad.text  # nothing typed is lost

    good = portal.post(
        "/portal/tasks",
        {"queue_id": str(queue.id), "title": "Pare-brise", "payload.claim_type": "insurance",
         "payload.description": "Fissure sur autoroute", "payload.claimed_amount_minor": "45000",
         "payload.currency": "EUR", "external_ref": "SIN-1", "case_ref": "EXP-77"},
    )  # fmt: skip
    assert good.status_code == 303, good.text
    detail = portal.get(good.headers["location"]).text
    assert "Pare-brise" in detail and "45000" in detail and "SIN-1" in detail and "EXP-77" in detail
    listed = portal.get("/portal/tasks", queue_id=str(queue.id)).text
    assert "Pare-brise" in listed


def test_the_task_page_shows_the_timeline_and_takes_comments_files_and_actions(
    person: tuple[Portal, Any], db: Database
) -> None:
    portal, organization = person
    task = make_task(db, make_queue(db, organization))
    url = f"/portal/tasks/{task.id}"
    assert portal.post(f"{url}/comments", {"body": "Merci de traiter vite"}).status_code == 303
    upload = portal.post(f"{url}/attachments", files={"file": ("contrat.pdf", PDF, "application/pdf")})
    assert upload.status_code == 303, upload.text
    page = portal.get(url).text
    assert "Merci de traiter vite" in page and "contrat.pdf" in page
    assert 'data-testid="timeline"' in page and "Attached a file" in page
    link = re.search(rf'href="({url}/attachments/[^"]+)"', page)
    assert link and portal.get(link.group(1)).content == PDF
    cancelled = portal.post(f"{url}/transitions", {"action": "cancel", "revision": task.revision})
    assert cancelled.status_code == 303
    assert "Cancelled" in portal.get(url).text
    stale = portal.post(f"{url}/transitions", {"action": "escalate", "revision": task.revision})
    assert stale.status_code == 412


def test_an_upload_reports_each_bad_row_and_offers_the_report(
    person: tuple[Portal, Any], db: Database
) -> None:
    portal, organization = person
    queue = make_queue(db, organization)
    content = b"title,description\nFacture,Double debit\nVide,\nColis,Perdu\n"
    answer = portal.post(
        "/portal/imports", {"queue_id": str(queue.id)}, files={"file": ("tickets.csv", content, "text/csv")}
    )
    assert answer.status_code == 303, answer.text
    page = portal.get(answer.headers["location"]).text
    assert re.search(r'data-testid="import-accepted">2<', page) and re.search(
        r'data-testid="import-rejected">1<', page
    )
    assert "<td>2</td><td>description</td>" in page
    report = portal.get(answer.headers["location"] + "/report.csv")
    assert report.headers["content-type"].startswith("text/csv")
    assert report.text.splitlines()[2].startswith("2,rejected,,description,")


def test_webhook_endpoints_and_their_delivery_log(
    person: tuple[Portal, Any], db: Database, settings: Settings, receiver: Receiver
) -> None:
    portal, organization = person
    created = portal.post("/portal/webhooks", {"url": receiver.url, "event_types": ["task.created"]})
    assert created.status_code == 200
    secret = re.search(r'data-testid="secret">([^<]+)<', created.text)
    assert secret and created.headers["cache-control"] == "no-store"
    make_task(db, make_queue(db, organization))
    relay.run(db, settings, deadline_seconds=5)
    signing.verify(secret.group(1), receiver.accepted()[0].headers, receiver.accepted()[0].body)
    endpoint = re.search(r'href="(/portal/webhooks/[0-9a-f-]{36})"', portal.get("/portal/webhooks").text)
    assert endpoint
    log = portal.get(endpoint.group(1)).text
    assert "task.created" in log and "Delivered" in log
    bad = portal.post("/portal/webhooks", {"url": "http://hooks.example.com/x"})
    assert "must be https" in bad.text


def test_another_tenants_objects_are_not_found_on_every_portal_page(
    person: tuple[Portal, Any], db: Database, settings: Settings, app: FastAPI
) -> None:
    """Every portal route with an id in its path, tried with tenant A's objects by B."""
    portal, _b = person
    a = make_org(db, OrgKind.CLIENT)
    queue = make_queue(db, a)
    task = make_task(db, queue)
    ids = {
        "task_id": task.id,
        "attachment_id": make_attachment(db, settings, task).id,
        "import_id": make_import(db, settings, queue, b"title,description\nx,y\n").id,
        "endpoint_id": make_webhook_endpoint(db, a).id,
        "delivery_id": make_delivery(db, a).id,
    }
    checked = 0
    for route in _every_route(app.routes):
        path = getattr(route, "path", "")
        names = re.findall(r"{(\w+)}", path)
        if not path.startswith("/portal") or not names:
            continue
        url = path.format(**{name: ids[name] for name in names})
        for method in route.methods:  # type: ignore[attr-defined]
            answer = (
                portal.get(url)
                if method == "GET"
                else portal.post(
                    url, {"body": "x", "action": "cancel", "revision": "1"}, files={"file": ("a.pdf", PDF)}
                )
            )
            assert answer.status_code == 404, f"{method} {path}: {answer.status_code} {answer.text[-400:]}"
            checked += 1
    assert checked >= 10


def _every_route(routes: list[Any]) -> Any:
    """Routes of included routers too (FastAPI keeps them under ``original_router``)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from _every_route(included.routes) if included is not None else [route]


def test_a_portal_form_without_its_csrf_token_is_refused(person: tuple[Portal, Any], db: Database) -> None:
    portal, organization = person
    task = make_task(db, make_queue(db, organization))
    for url, data in (
        (f"/portal/tasks/{task.id}/comments", {"body": "x"}),
        ("/portal/queues", {"name": "Q", "task_kind": "claim"}),
        ("/portal/webhooks", {"url": "https://hooks.example.com/x"}),
    ):
        answer = portal.client.post(url, data=data, headers=HTML, follow_redirects=False)
        assert answer.status_code == 403, url
