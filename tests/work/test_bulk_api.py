from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.api import create_app
from services.core.database import Database
from services.core.settings import Settings
from services.notify.models import OutboxEvent
from services.work import imports
from services.work.storage import blob_store
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller

CSV = "text/csv"
NDJSON = "application/x-ndjson"
ClientWith = Callable[..., Any]


def _bulk(
    client: TestClient, caller: Caller, queue_id: str, body: bytes, media: str = CSV, **params: Any
) -> Any:
    headers = {**caller.headers, "Content-Type": media}
    return client.post(
        "/v1/tasks/bulk", params={"queue_id": queue_id, **params}, headers=headers, content=body
    )


@pytest.fixture
def client_with(settings: Settings, db: Database) -> ClientWith:
    """A client of an app whose settings differ from the suite's."""

    @contextmanager
    def make(**changes: Any) -> Iterator[TestClient]:
        with TestClient(
            create_app(settings.model_copy(update=changes), db), base_url="http://localhost"
        ) as c:
            yield c

    return make


def _tasks(client: TestClient, caller: Caller) -> list[dict[str, Any]]:
    return list(client.get("/v1/tasks", headers=caller.headers, params={"limit": 200}).json()["items"])


def test_good_rows_are_taken_and_each_bad_row_is_reported(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    body = (
        "\ufefftitle,description,priority,external_ref,channel\n"
        "Colis perdu,Mon colis n'est jamais arrivé.,high,R-1,email\n"
        "Sans description,,normal,R-2,email\n"
        'Adresse,"Nouvelle adresse :\n12 rue de Paris",low,R-3,web\n'
        "Mauvais canal,Bonjour,normal,R-4,pigeon\n"
        "Priorité,Bonjour,extreme,R-5,chat\n"
        "Doublon,Encore,normal,R-1,chat\n"
    ).encode()
    answer = _bulk(client, acme, queue_id, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["accepted"], result["rejected"]) == (2, 4)
    rows = {r["row"]: r for r in result["rows"]}
    assert [rows[i]["status"] for i in range(1, 7)] == ["accepted", "rejected", "accepted"] + ["rejected"] * 3
    assert [e["field"] for e in rows[2]["errors"]] == ["description"]
    assert [e["field"] for e in rows[4]["errors"]] == ["channel"]
    assert [e["field"] for e in rows[5]["errors"]] == ["priority"]
    assert rows[6]["errors"] == [{"field": "external_ref", "message": "used by an earlier row of this file"}]
    stored = {t["external_ref"]: t for t in _tasks(client, acme)}
    assert set(stored) == {"R-1", "R-3"}
    assert stored["R-3"]["payload"]["description"] == "Nouvelle adresse :\n12 rue de Paris"
    assert stored["R-1"]["id"] == rows[1]["id"] and stored["R-1"]["priority"] == "high"


def test_a_bulk_task_has_the_history_entry_and_event_of_a_task_submitted_alone(
    client: TestClient, acme: Caller, queue_id: str, db: Database
) -> None:
    body = {"title": "Facture", "payload": {"description": "Double débit", "channel": "email"}}
    alone = client.post("/v1/tasks", headers=acme.headers, json={**body, "queue_id": queue_id}).json()
    bulk_row = _bulk(client, acme, queue_id, json.dumps(body).encode(), NDJSON).json()["rows"][0]
    tasks = {kind: client.get(f"/v1/tasks/{t}", headers=acme.headers).json() for kind, t in
             (("alone", alone["id"]), ("bulk", bulk_row["id"]))}  # fmt: skip
    for task in tasks.values():  # a later change: its entry and event sort after the creation's
        answer = client.post(
            f"/v1/tasks/{task['id']}/transitions", headers=acme.headers, json={"action": "cancel"}
        )
        assert answer.status_code == 200, answer.text

    def history(task_id: str) -> list[dict[str, Any]]:
        entries = client.get(f"/v1/tasks/{task_id}/events", headers=acme.headers).json()["items"]
        return [{k: v for k, v in entry.items() if k not in ("id", "at")} for entry in entries]

    assert history(alone["id"]) == history(bulk_row["id"])
    assert history(alone["id"])[0]["kind"] == "created"
    with db.session() as session:
        bind(session, AccessScope.everything())
        events = {
            kind: session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.subject_id == uuid.UUID(t["id"]))
                .order_by(OutboxEvent.id)
            ).all()
            for kind, t in tasks.items()
        }
    for kind, task in tasks.items():
        assert [e.type for e in events[kind]] == ["task.created", "task.status_changed"]
        assert events[kind][0].data == {"task": task}  # the document the API showed, to the microsecond


def test_backslashes_tabs_and_line_breaks_arrive_as_sent(
    client: TestClient, acme: Caller, queue_id: str, db: Database
) -> None:
    title = "C:\\Users\\x\tcol\r\nline \\. end"
    payload = {"description": 'back\\slash\\N \\n\t"quoted"\nnext', "channel": "email"}
    row = json.dumps({"title": title, "external_ref": "ESC\\1\t", "payload": payload})
    accepted = _bulk(client, acme, queue_id, row.encode(), NDJSON).json()["rows"][0]
    task = client.get(f"/v1/tasks/{accepted['id']}", headers=acme.headers).json()
    assert (task["title"], task["external_ref"], task["payload"]) == (title, "ESC\\1\t", payload)
    with db.session() as session:  # and so does the task in its event
        bind(session, AccessScope.everything())
        event = session.scalars(
            select(OutboxEvent).where(OutboxEvent.subject_id == uuid.UUID(task["id"]))
        ).one()
    assert event.data == {"task": task}


def test_values_every_row_shares_arrive_as_sent(client: TestClient, acme: Caller, queue_id: str) -> None:
    """A value the same in every row is sent once for the batch, not once a row (COPY):
    text, JSON, an absent language, all as if sent alone."""
    title = "C:\\Users\\x\tcol\r\nline \\. end"
    payload = {"description": 'back\\slash\\N \n\t"quoted"', "amount": 12.5, "tags": ["a", None]}
    rows = [
        {"title": title, "external_ref": f"SAME-{n}", "payload": payload, "priority": "high"}
        for n in range(3)
    ]
    result = _bulk(client, acme, queue_id, "\n".join(json.dumps(row) for row in rows).encode(), NDJSON).json()
    assert result["accepted"] == 3, result["rows"]
    for accepted in result["rows"]:
        task = client.get(f"/v1/tasks/{accepted['id']}", headers=acme.headers).json()
        assert (task["title"], task["payload"], task["priority"], task["language"]) == (
            title,
            payload,
            "high",
            None,
        )


def test_a_case_reference_column_is_the_tasks_not_the_payloads(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    body = "title,description,case_ref\nFirst letter,x,DOS-7\nSecond letter,y,DOS-7\nAlone,z,\n"
    result = _bulk(client, acme, queue_id, body.encode()).json()
    assert result["accepted"] == 3, result["rows"]
    tasks = {t["title"]: t for t in _tasks(client, acme)}
    assert [tasks[t]["case_ref"] for t in ("First letter", "Second letter", "Alone")] == [
        "DOS-7",
        "DOS-7",
        None,
    ]
    assert "case_ref" not in tasks["First letter"]["payload"]


def test_ndjson_with_a_bom_and_crlf_line_ends_is_read(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    lines = [json.dumps({"title": f"Ticket {n}", "payload": {"description": "Colis"}}) for n in range(2)]
    body = b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    result = _bulk(client, acme, queue_id, body, NDJSON).json()
    assert (result["accepted"], result["rejected"]) == (2, 0), result["rows"]


def test_ndjson_that_is_not_utf8_is_named_and_nothing_is_taken(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    good = json.dumps({"title": "Ticket", "payload": {"description": "Colis"}}).encode()
    body = good + b"\n" + '{"title": "Débit", "payload": {"description": "x"}}'.encode("latin-1") + b"\n"
    answer = _bulk(client, acme, queue_id, body, NDJSON)
    assert answer.status_code == 400 and "UTF-8" in answer.json()["detail"]
    assert _tasks(client, acme) == []


def test_an_external_ref_already_used_rejects_its_row(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    client.post(
        "/v1/tasks",
        headers=acme.headers,
        json={"queue_id": queue_id, "external_ref": "OLD-1", "title": "t", "payload": {"description": "d"}},
    )
    result = _bulk(client, acme, queue_id, b"title,description,external_ref\nA,b,OLD-1\nC,d,NEW-1\n").json()
    assert result["rows"][0]["errors"][0]["field"] == "external_ref"
    assert result["rows"][1]["status"] == "accepted"


def test_ndjson_rows_are_checked_one_by_one(client: TestClient, acme: Caller, queue_id: str) -> None:
    lines = [
        json.dumps({"title": "Facture", "payload": {"description": "Double débit"}, "language": "fr"}),
        "{not json",
        json.dumps({"title": "Sans payload"}),
        json.dumps(["an", "array"]),
        "",
        json.dumps({"title": "Ok", "payload": {"description": "Fine", "customer_email": "x@example.com"}}),
    ]
    result = _bulk(client, acme, queue_id, "\n".join(lines).encode(), NDJSON).json()
    assert (result["accepted"], result["rejected"]) == (2, 3)
    rejected = {r["row"]: r["errors"][0]["field"] for r in result["rows"] if r["status"] == "rejected"}
    assert rejected == {2: "", 3: "payload.description", 4: ""}


def test_csv_cells_take_the_types_of_the_schema(client: TestClient, acme: Caller) -> None:
    queue = client.post(
        "/v1/queues", headers=acme.headers, json={"name": "Claims", "task_kind": "claim"}
    ).json()
    body = (
        "title,claim_type,description,claimed_amount_minor,currency\n"
        "Pare-brise,insurance,Fissure,45000,EUR\n"
        "Rétroviseur,insurance,Cassé,12x,EUR\n"
    ).encode()
    result = _bulk(client, acme, queue["id"], body).json()
    assert result["rows"][1]["errors"] == [
        {"field": "claimed_amount_minor", "message": "'12x' is not a whole number"}
    ]
    task = client.get(f"/v1/tasks/{result['rows'][0]['id']}", headers=acme.headers).json()
    assert task["payload"]["claimed_amount_minor"] == 45000


def test_all_or_nothing_takes_nothing_when_a_row_is_bad(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    body = b"title,description\nGood,one\nBad,\nGood,two\n"
    answer = _bulk(client, acme, queue_id, body, all_or_nothing="true")
    assert answer.status_code == 422
    assert answer.json()["rows"] == [
        {
            "row": 2,
            "status": "rejected",
            "errors": [{"field": "description", "message": answer.json()["rows"][0]["errors"][0]["message"]}],
        }
    ]
    assert _tasks(client, acme) == []
    clean = _bulk(client, acme, queue_id, b"title,description\nGood,one\nGood,two\n", all_or_nothing="true")
    assert clean.json()["accepted"] == 2


def test_missing_required_columns_are_named(client: TestClient, acme: Caller, queue_id: str) -> None:
    answer = _bulk(client, acme, queue_id, b"title,channel\nA,email\n")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["missing"] == ["description"] and "description" in answer.json()["detail"]


def test_a_wrong_delimiter_is_named(client: TestClient, acme: Caller, queue_id: str) -> None:
    body = "title;description\nFacture;Double débit\n".encode()
    answer = _bulk(client, acme, queue_id, body)
    assert answer.status_code == 400
    assert answer.json()["delimiter"] == ";" and "semicolon" in answer.json()["detail"]
    assert _bulk(client, acme, queue_id, body, delimiter=";").json()["accepted"] == 1


def test_invalid_utf8_is_named_and_nothing_is_taken(client: TestClient, acme: Caller, queue_id: str) -> None:
    body = "title,description\nFacture,Débit\n".encode("latin-1")
    answer = _bulk(client, acme, queue_id, body)
    assert answer.status_code == 400 and "UTF-8" in answer.json()["detail"]
    assert _tasks(client, acme) == []


def test_an_unknown_media_type_is_415(client: TestClient, acme: Caller, queue_id: str) -> None:
    assert _bulk(client, acme, queue_id, b"{}", "application/json").status_code == 415


def test_an_unknown_or_foreign_queue_is_404(client: TestClient, acme: Caller) -> None:
    answer = _bulk(client, acme, "0190c4b4-0000-7000-8000-000000000000", b"title,description\nA,b\n")
    assert answer.status_code == 404


def test_too_many_rows_or_bytes_is_413(client_with: ClientWith, acme: Caller, queue_id: str) -> None:
    with client_with(bulk_max_rows=3) as client:
        four = b"title,description\n" + b"A,b\n" * 4
        assert _bulk(client, acme, queue_id, four).status_code == 413
        assert _bulk(client, acme, queue_id, b"title,description\n" + b"A,b\n" * 3).status_code == 200
    with client_with(bulk_max_bytes=100) as client:
        answer = _bulk(client, acme, queue_id, b"title,description\n" + b"Another row,with text\n" * 10)
        assert answer.status_code == 413


def test_a_large_file_becomes_an_import_with_a_per_row_report(
    client_with: ClientWith, settings: Settings, db: Database, acme: Caller, queue_id: str
) -> None:
    lines = ["title,description,external_ref"]
    for i in range(1, 2001):
        description = "" if i % 100 == 0 else f"Demande numéro {i}"  # 1% bad rows
        lines.append(f"Ticket {i},{description},B-{i}")
    body = ("\n".join(lines) + "\n").encode()
    with client_with(bulk_sync_max_bytes=1024) as client:
        answer = _bulk(client, acme, queue_id, body)
        assert answer.status_code == 202, answer.text
        import_id = answer.json()["import_id"]
        assert answer.headers["location"] == f"/v1/imports/{import_id}"
        import uuid

        imports.run_job(db, blob_store(settings), uuid.UUID(import_id))  # what the worker does
        job = client.get(f"/v1/imports/{import_id}", headers=acme.headers).json()
        assert (job["status"], job["accepted"], job["rejected"], job["rows_done"]) == (
            "succeeded",
            1980,
            20,
            2000,
        )
        rows = [
            json.loads(line)
            for line in client.get(f"/v1/imports/{import_id}/rows", headers=acme.headers).text.splitlines()
        ]
        assert [r["row"] for r in rows] == list(range(1, 2001))
        assert [r["row"] for r in rows if r["status"] == "rejected"] == list(range(100, 2001, 100))
        report = client.get(
            f"/v1/imports/{import_id}/rows",
            headers={**acme.headers, "Accept": "text/csv"},
            params={"status": "rejected"},
        )
        assert report.headers["content-type"].startswith("text/csv")
        lines_out = report.text.splitlines()
        assert lines_out[0] == "row,status,task_id,field,message" and len(lines_out) == 21
        assert lines_out[1].startswith("100,rejected,,description,")
    total = client_with  # the tasks really exist
    with total() as client:
        count, cursor = 0, None
        while True:
            page = client.get(
                "/v1/tasks",
                headers=acme.headers,
                params={"limit": 200, **({"cursor": cursor} if cursor else {})},
            ).json()
            count += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert count == 1980


def test_a_bulk_retry_with_the_same_key_replays_and_imports_nothing_twice(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    body = b"title,description\nA,premier\nB,second\n"
    headers = {**acme.headers, "Content-Type": CSV, "Idempotency-Key": "upload-1"}
    first = client.post("/v1/tasks/bulk", params={"queue_id": queue_id}, headers=headers, content=body)
    again = client.post("/v1/tasks/bulk", params={"queue_id": queue_id}, headers=headers, content=body)
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert len(_tasks(client, acme)) == 2
    other = client.post(
        "/v1/tasks/bulk", params={"queue_id": queue_id}, headers=headers, content=body + b"C,x\n"
    )
    assert other.status_code == 409


def test_a_broken_header_or_a_too_deep_row_never_costs_the_good_rows(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    broken = _bulk(client, acme, queue_id, b'title,"description"x\nA,b\n')
    assert broken.status_code == 400 and broken.json()["problem"] == "header"
    deep = "[" * 100_000 + "]" * 100_000
    lines = [json.dumps({"title": "ok", "payload": {"description": "fine"}}), deep]
    result = _bulk(client, acme, queue_id, "\n".join(lines).encode(), NDJSON).json()
    assert (result["accepted"], result["rejected"]) == (1, 1)


def test_a_foreign_queue_is_404_for_bulk_and_for_moving_a_task(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    from tests.factories import make_queue, make_tenant

    foreign = make_queue(db, make_tenant(db).organization)
    answer = _bulk(client, acme, str(foreign.id), b"title,description\nA,b\n")
    assert answer.status_code == 404
    task = client.post(
        "/v1/tasks",
        headers=acme.headers,
        json={"queue_id": queue_id, "title": "t", "payload": {"description": "d"}},
    ).json()
    moved = client.patch(f"/v1/tasks/{task['id']}", headers=acme.headers, json={"queue_id": str(foreign.id)})
    assert moved.status_code == 404
    assert client.get(f"/v1/tasks/{task['id']}", headers=acme.headers).json()["queue_id"] == queue_id


def test_a_job_whose_file_breaks_half_way_imports_nothing(
    db: Database, settings: Settings, acme: Caller, queue_id: str
) -> None:
    """A file-level problem is found before the first batch is committed."""
    import uuid as uuid_module

    from sqlalchemy import func, select

    from services.work.bulk import BATCH_ROWS
    from services.work.models import Task
    from tenants import service as tenancy
    from tenants.scoping import AccessScope, bind
    from tests.factories import make_import, principal_of

    # The bad byte is in the second batch: the first would be committed if it were not found first.
    rows = b"".join(f"Ticket {i},Demande {i}\n".encode() for i in range(BATCH_ROWS + 500))
    bad = f"Demande {BATCH_ROWS + 300}".encode()
    content = b"title,description\n" + rows.replace(bad, bad.replace(b" ", b" \xff"))
    with db.session() as session:
        bind(session, AccessScope.everything())
        queue = service_queue(session, uuid_module.UUID(queue_id))
    job = make_import(db, settings, queue, content)
    with db.session() as session:
        bind(session, AccessScope.everything())
        owner = principal_of(tenancy.get_organization(session, queue.tenant_id))
        done = imports.get_job(session, owner, job.id)
        assert done.status.value == "failed" and "UTF-8" in (done.error or "")
        assert session.scalar(select(func.count()).select_from(Task)) == 0


def test_a_job_whose_worker_died_is_carried_on_once(
    db: Database, settings: Settings, acme: Caller, queue_id: str
) -> None:
    import uuid as uuid_module
    from datetime import timedelta

    from sqlalchemy import func, select, update

    from services.core.time import utcnow
    from services.work.models import ImportJob, Task
    from tenants.scoping import AccessScope, bind
    from tests.factories import make_import

    with db.session() as session:
        bind(session, AccessScope.everything())
        queue = service_queue(session, uuid_module.UUID(queue_id))
    job = make_import(db, settings, queue, b"title,description\nA,un\nB,deux\n", run=False)
    assert imports.claim(db, job.id)  # a worker took it, then died before its first batch
    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(update(ImportJob).values(started_at=utcnow() - timedelta(hours=1)))
        stalled = imports.stalled_jobs(session)
    assert [job_id for job_id, _beat in stalled] == [job.id]
    for job_id, heartbeat in stalled * 2:  # the sweep twice: the second finds it taken
        imports.resume_stalled(db, blob_store(settings), job_id, heartbeat)
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert session.scalar(select(func.count()).select_from(Task)) == 2
        assert session.scalars(select(ImportJob.status)).one().value == "succeeded"


def service_queue(session: Any, queue_id: Any) -> Any:
    from services.work import queues

    return queues.get_queue(session, queue_id)


def test_an_integer_past_64_bits_arrives_exactly_as_sent(client: TestClient, acme: Caller) -> None:
    """NDJSON lines are parsed, and COPY text rendered, by a fast parser that cannot hold such
    an integer: those lines go through the standard one (enough rows to be staged by COPY)."""
    queue = client.post(
        "/v1/queues", headers=acme.headers, json={"name": "Claims", "task_kind": "claim"}
    ).json()
    huge = 123456789012345678901234567890
    rows = [
        {
            "title": f"Sinistre {n}",
            "payload": {
                "claim_type": "insurance",
                "description": "Dégât des eaux",
                "claimed_amount_minor": huge if n == 7 else 45000,
                "currency": "EUR",
            },
        }
        for n in range(60)
    ]
    body = "\n".join(json.dumps(row) for row in rows).encode()
    result = _bulk(client, acme, queue["id"], body, NDJSON).json()
    assert result["accepted"] == 60, result["rows"]
    task = client.get(f"/v1/tasks/{result['rows'][7]['id']}", headers=acme.headers).json()
    assert task["payload"]["claimed_amount_minor"] == huge
