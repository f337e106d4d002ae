"""Webhook signatures as the Standard Webhooks specification defines them.

``webhook-signature`` holds ``v1,<base64 HMAC-SHA256>`` over
``{webhook-id}.{webhook-timestamp}.{body}``, once per valid secret (two during
a rotation), so receivers can use any Standard Webhooks library to verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300  # receivers refuse older timestamps: replays of captured requests


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def headers(secrets_: Iterable[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets_),
    }


class InvalidSignature(Exception):
    pass


def verify(secret: str, request_headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """What a receiver does; used by our tests and shown in the docs."""
    message_id = request_headers["webhook-id"]
    timestamp = int(request_headers["webhook-timestamp"])
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = signature(secret, message_id, timestamp, body)
    offered = request_headers["webhook-signature"].split()
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise InvalidSignature("no signature matches")
