"""What a process remembers of the queues it has taken tasks into.

A queue's tenant and task kind never change once it exists (``QueueUpdate`` offers
neither, and queues are not deleted), so remembering them can never be stale. A task that
names its priority needs nothing else of its queue: it is taken in without reading the
queue (one statement fewer on every such request). Visibility is still decided per
request, by the session's scope against the remembered tenant; on PostgreSQL the insert's
row security and the task's key to its queue check it again.

A queue is remembered only once the transaction that read it commits: a queue created in a
transaction that then rolls back is never taken for one that exists.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class KnownQueue:
    id: uuid.UUID
    tenant_id: uuid.UUID
    task_kind: str

    @property
    def default_priority(self) -> None:
        """Not remembered: it may change (a task taken in with it reads its queue)."""
        return None


class KnownQueues:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[uuid.UUID, KnownQueue] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, queue_id: uuid.UUID) -> KnownQueue | None:
        with self._lock:
            return self._entries.get(queue_id)

    def remember_on_commit(self, session: Session, queue: KnownQueue) -> None:
        session.info.setdefault(_PENDING, []).append(queue)

    def remember(self, queues: list[KnownQueue]) -> None:
        """Now (``remember_on_commit`` is how intake asks for it)."""
        with self._lock:
            for queue in queues:
                self._entries[queue.id] = queue
                self._entries.move_to_end(queue.id)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


KNOWN_QUEUES = KnownQueues()
_PENDING = "bpo.known_queues.pending"  # read by this transaction, remembered if it commits


@event.listens_for(Session, "after_commit")
def _remember_on_commit(session: Session) -> None:
    queues = session.info.pop(_PENDING, None)
    if queues:
        KNOWN_QUEUES.remember(queues)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
