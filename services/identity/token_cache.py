"""A process's short memory of the bearer tokens and web sessions it has resolved.

Resolving a token costs the request's heaviest statement, in an authentication scope of
its own (two settings round trips); a web session, three statements (the session and its
user, the organisation, the roles). A token or session cookie is presented again and
again (an agent's workspace polls every few seconds), so each process remembers a
resolved principal for a few seconds, as RFC 7662 section 4 allows a resource server to
cache an introspection answer:

- never past the token's or session's own expiry;
- forgotten at once in the process that revokes the token or its client, signs the
  session out or changes its user's locale, and again when
  that transaction commits; a resolution that began before a revocation of this process
  is not remembered (``epoch``), so a request that read the token just before cannot put
  it back; other processes stop accepting it within ``token_cache_seconds``;
- keyed by the token's digest, like the table: the token itself is never kept;
- bounded: the oldest entries go first.

``token_cache_seconds = 0`` turns it off.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from tenants.principal import Principal

MAX_ENTRIES = 10_000


class TokenCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, tuple[Principal, datetime]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._epoch = 0  # revocations seen by this process

    def epoch(self) -> int:
        """Taken before reading a token: ``put`` refuses if a revocation came since."""
        return self._epoch

    def get(self, token_digest: str, now: datetime) -> Principal | None:
        with self._lock:
            entry = self._entries.get(token_digest)
            if entry is None:
                return None
            if entry[1] <= now:
                del self._entries[token_digest]
                return None
            return entry[0]

    def put(
        self,
        token_digest: str,
        principal: Principal,
        now: datetime,
        expires_at: datetime,
        seconds: int,
        epoch: int,
    ) -> None:
        if seconds <= 0:
            return
        with self._lock:
            if epoch != self._epoch:
                return
            self._entries[token_digest] = (principal, min(expires_at, now + timedelta(seconds=seconds)))
            self._entries.move_to_end(token_digest)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def forget_subject(self, session: Session, subject_id: uuid.UUID) -> None:
        """Drop the API client's tokens (or the user's sessions) now and once more when
        ``session`` commits."""

        def forget(*_: Any) -> None:
            with self._lock:
                self._epoch += 1
                for key in [k for k, (p, _) in self._entries.items() if p.subject_id == subject_id]:
                    del self._entries[key]

        forget()
        event.listen(session, "after_commit", forget, once=True)

    def forget_token(self, session: Session, token_digest: str) -> None:
        def forget(*_: Any) -> None:
            with self._lock:
                self._epoch += 1
                self._entries.pop(token_digest, None)

        forget()
        event.listen(session, "after_commit", forget, once=True)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


TOKENS = TokenCache()
SESSIONS = TokenCache()  # web sessions, keyed by the session token's digest
