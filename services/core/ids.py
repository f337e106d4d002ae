"""Time-sortable identifiers (UUIDv7, RFC 9562).

Ids sort by creation time, so primary-key indexes stay append-mostly and cursor
pagination by id is also pagination by age.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
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
            _counter = -1  # set below from the random bytes: a random start, room to count
        # One system call per id; ids are unguessable, so they reveal nothing of other tenants' volume.
        random_bytes = int.from_bytes(os.urandom(10), "big")
        if _counter < 0:
            _counter = random_bytes >> 70
        rand_b = random_bytes & ((1 << 62) - 1)
        value = (now_ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= _counter << 64
        value |= 0b10 << 62
        value |= rand_b
    return uuid.UUID(int=value)
