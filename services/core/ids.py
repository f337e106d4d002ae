"""Time-sortable identifiers (UUIDv7, RFC 9562).

Ids sort by creation time, so primary-key indexes stay append-mostly and cursor
pagination by id is also pagination by age.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

_lock = threading.Lock()
# Ids must be unique, not secret (every read goes through the tenant scope): a generator
# seeded from the OS, instead of two system calls per id on the bulk intake hot path.
_random = random.Random(os.urandom(32))  # noqa: S311
# Forked workers (Celery prefork) must not share the parent's sequence.
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
_last_ms = 0
_counter = 0


def new_id() -> uuid.UUID:
    """A UUIDv7; monotonic within the process even inside one millisecond."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # 12-bit sequence exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _counter = _random.getrandbits(10)  # random start, room to count
        rand_b = _random.getrandbits(62)
        value = (now_ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= _counter << 64
        value |= 0b10 << 62
        value |= rand_b
    return uuid.UUID(int=value)
