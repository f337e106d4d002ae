"""Two relays at once (two workers, or a slow run overlapping the next beat) never
send the same delivery twice: leases taken with SKIP LOCKED (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest

from services.core.database import Database
from services.core.settings import Settings
from services.notify import relay
from tenants.scoping import AccessScope, bind
from tests.factories import make_org, make_queue, make_task, make_webhook_endpoint
from tests.notify.receiver import Receiver

pytestmark = pytest.mark.postgres


def test_two_relays_running_together_send_each_event_once(
    committed: Database, settings: Settings, receiver: Receiver
) -> None:
    organization = make_org(committed)
    make_webhook_endpoint(committed, organization, url=receiver.url)
    queue = make_queue(committed, organization)
    tasks = [
        make_task(committed, queue, external_ref=f"C-{i}") for i in range(120)
    ]  # more than one claim batch
    receiver.delay = 0.005  # both relays are busy sending at the same time
    with committed.session() as session:  # deliveries ready, so that both relays find work at once
        bind(session, AccessScope.everything())
        while relay.fan_out(session):
            session.commit()

    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        relay.run(committed, settings, deadline_seconds=20)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = receiver.accepted_ids()
    assert len(ids) == len(tasks) == len(set(ids))  # every event, none twice
    assert all(count == 1 for count in receiver.tries.values())
