"""The work jobs on the real worker and beat of ``bpo serve``: a large bulk file is
imported by the worker, and tasks submitted without a language get one."""

from __future__ import annotations

import httpx
import pytest

from tests.live import LivePlatform, api_headers, until

pytestmark = pytest.mark.slow


def test_a_large_file_is_imported_by_the_worker(platform: LivePlatform) -> None:
    api = httpx.Client(base_url=platform.url, headers=api_headers(platform, "Assurances Lumière"), timeout=30)
    queue = api.post("/v1/queues", json={"name": "Import massif", "task_kind": "support_ticket"}).json()
    rows = "".join(f"Ticket {i},Le client demande un duplicata de la facture {i}.\n" for i in range(1, 3001))
    body = ("title,description\n" + rows + "Sans description,\n").encode()
    assert len(body) > 64 * 1024  # over the live platform's threshold: an import job
    answer = api.post(
        "/v1/tasks/bulk", params={"queue_id": queue["id"]}, content=body, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 202, answer.text
    url = f"/v1/imports/{answer.json()['import_id']}"
    job = until(lambda: (j := api.get(url).json())["status"] in ("succeeded", "failed") and j, 120)
    assert isinstance(job, dict)
    assert (job["status"], job["accepted"], job["rejected"]) == ("succeeded", 3000, 1)


def test_the_worker_detects_the_language_of_a_task_submitted_without_one(platform: LivePlatform) -> None:
    api = httpx.Client(base_url=platform.url, headers=api_headers(platform, "Assurances Lumière"), timeout=30)
    queue = api.post("/v1/queues", json={"name": "Support DE", "task_kind": "support_ticket"}).json()
    task = api.post(
        "/v1/tasks",
        json={
            "queue_id": queue["id"],
            "title": "Rechnung doppelt abgebucht",
            "payload": {"description": "Die Rechnung vom März wurde zweimal von meinem Konto abgebucht."},
        },
    ).json()
    assert task["language"] is None
    detected = until(lambda: api.get(f"/v1/tasks/{task['id']}").json()["language"])
    assert detected == "de"
