from __future__ import annotations

import hashlib
import struct
import zlib

from fastapi.testclient import TestClient
from sqlalchemy import update

from services.core.database import Database
from services.core.settings import Settings
from tenants.models import Organization
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller
from tests.factories import PDF


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _task(client: TestClient, caller: Caller, queue_id: str) -> str:
    answer = client.post(
        "/v1/tasks",
        headers=caller.headers,
        json={"queue_id": queue_id, "title": "Attestation", "payload": {"description": "Voir pièce jointe."}},
    )
    return str(answer.json()["id"])


def test_an_attachment_round_trips_with_its_digest_and_history(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    task_id = _task(client, acme, queue_id)
    answer = client.post(
        f"/v1/tasks/{task_id}/attachments", headers=acme.headers, files={"file": ("Relevé été.pdf", PDF)}
    )
    assert answer.status_code == 201, answer.text
    attachment = answer.json()
    assert attachment["content_type"] == "application/pdf" and attachment["size"] == len(PDF)
    assert attachment["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert attachment["filename"] == "Relevé été.pdf"
    download = client.get(f"/v1/tasks/{task_id}/attachments/{attachment['id']}/content", headers=acme.headers)
    assert download.content == PDF and download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "filename*=UTF-8''Relev%C3%A9%20%C3%A9t%C3%A9.pdf" in download.headers["content-disposition"]
    listed = client.get(f"/v1/tasks/{task_id}/attachments", headers=acme.headers).json()["items"]
    assert [a["id"] for a in listed] == [attachment["id"]]
    events = client.get(f"/v1/tasks/{task_id}/events", headers=acme.headers).json()["items"]
    assert events[-1]["kind"] == "attached"


def test_the_type_comes_from_the_content_not_the_name(client: TestClient, acme: Caller) -> None:
    queue = client.post(
        "/v1/queues",
        headers=acme.headers,
        json={
            "name": "PDF only",
            "task_kind": "support_ticket",
            "accepted_attachment_types": ["application/pdf"],
        },
    ).json()
    task_id = _task(client, acme, queue["id"])
    disguised = client.post(
        f"/v1/tasks/{task_id}/attachments", headers=acme.headers, files={"file": ("facture.pdf", _png())}
    )
    assert disguised.status_code == 415
    assert disguised.json()["content_type"] == "image/png"
    assert client.get(f"/v1/tasks/{task_id}/attachments", headers=acme.headers).json()["items"] == []


def test_a_file_over_the_tenant_limit_is_413(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(
            update(Organization)
            .where(Organization.id == acme.tenant.organization.id)
            .values(attachment_max_bytes=1000)
        )
    task_id = _task(client, acme, queue_id)
    big = PDF + b"%" * 2000
    answer = client.post(
        f"/v1/tasks/{task_id}/attachments", headers=acme.headers, files={"file": ("big.pdf", big)}
    )
    assert answer.status_code == 413 and answer.json()["limit"] == 1000
    small = client.post(
        f"/v1/tasks/{task_id}/attachments", headers=acme.headers, files={"file": ("s.pdf", PDF)}
    )
    assert small.status_code == 201


def test_a_file_over_the_platform_limit_is_cut_off_at_the_door(
    client: TestClient, settings: Settings, acme: Caller, queue_id: str
) -> None:
    task_id = _task(client, acme, queue_id)
    huge = PDF + b"%" * (settings.attachment_max_bytes + 100 * 1024)
    answer = client.post(
        f"/v1/tasks/{task_id}/attachments", headers=acme.headers, files={"file": ("h.pdf", huge)}
    )
    assert answer.status_code == 413
