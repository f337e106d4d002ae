"""Random credentials and the hashes we keep of them."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(prefix: str) -> str:
    """A 256-bit random credential with a readable prefix (helps secret scanners)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def matches(credential: str, expected_digest: str) -> bool:
    return hmac.compare_digest(digest(credential), expected_digest)
