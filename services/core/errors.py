"""Domain errors: a stable problem ``type`` and an English title used as msgid.

Services raise these; they know nothing of HTTP. ``services/core/problems.py``
renders them as RFC 9457 problem+json, translating the title.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from services.core.i18n import _


@dataclass(frozen=True)
class FieldError:
    pointer: str  # RFC 6901 JSON pointer into the request ("/payload/amount")
    message: str


class DomainError(Exception):
    type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = _("Error")

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra or {}


class BadRequest(DomainError):
    type = "/problems/bad-request"
    title = _("Bad request")


class ValidationFailed(DomainError):
    type = "/problems/validation"
    title = _("The request is not valid")


class Unauthenticated(DomainError):
    type = "/problems/unauthenticated"
    title = _("Authentication required")


class InvalidToken(Unauthenticated):
    type = "/problems/invalid-token"
    title = _("The access token is invalid, expired or revoked")


class Forbidden(DomainError):
    type = "/problems/forbidden"
    title = _("You are not allowed to do this")


class InsufficientScope(Forbidden):
    type = "/problems/insufficient-scope"
    title = _("The access token lacks a required scope")


class NotFound(DomainError):
    type = "/problems/not-found"
    title = _("Not found")


class MethodNotAllowed(DomainError):
    type = "/problems/method-not-allowed"
    title = _("Method not allowed")


class Conflict(DomainError):
    type = "/problems/conflict"
    title = _("Conflict with the current state")


class PreconditionFailed(DomainError):
    type = "/problems/precondition-failed"
    title = _("The resource changed since you read it")


class PayloadTooLarge(DomainError):
    type = "/problems/payload-too-large"
    title = _("The request body is too large")


class UnsupportedMediaType(DomainError):
    type = "/problems/unsupported-media-type"
    title = _("This type of content is not accepted")


class RateLimited(DomainError):
    type = "/problems/rate-limited"
    title = _("Too many attempts, try again later")


class InternalError(DomainError):
    type = "/problems/internal"
    title = _("An unexpected error occurred")


class ServiceUnavailable(DomainError):
    type = "/problems/unavailable"
    title = _("A dependency is unavailable")
