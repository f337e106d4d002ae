"""RFC 9457 problem+json: the one place where errors become HTTP answers."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.core import errors, i18n
from services.core.jsonpointer import from_path, of_syntax_error

PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    errors.BadRequest: 400,
    errors.ValidationFailed: 422,
    errors.Unauthenticated: 401,
    errors.InvalidToken: 401,
    errors.Forbidden: 403,
    errors.InsufficientScope: 403,
    errors.NotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.RateLimited: 429,
    errors.ServiceUnavailable: 503,
    errors.InternalError: 500,
}

ERROR_BY_STATUS: dict[int, type[errors.DomainError]] = {
    400: errors.BadRequest,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    409: errors.Conflict,
    412: errors.PreconditionFailed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    422: errors.ValidationFailed,
    429: errors.RateLimited,
    503: errors.ServiceUnavailable,
}


class ProblemFieldError(BaseModel):
    pointer: str
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemFieldError] | None = None


# Attach to routers so that the OpenAPI document tells clients the error shape.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for status in (400, 401, 403, 404, 409, 422)
}


def status_of(error: errors.DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def request_locale(request: Request) -> str:
    """Set by authentication when it ran; else negotiated from the request alone."""
    locale = getattr(request.state, "locale", None)
    if locale:
        return str(locale)
    return i18n.negotiate(None, request.headers.get("accept-language"), None)


def problem_response(
    request: Request,
    status: int,
    problem_type: str,
    title: str,
    detail: str | None = None,
    field_errors: list[errors.FieldError] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    locale = request_locale(request)
    body: dict[str, Any] = {
        "type": problem_type,
        "title": i18n.gettext(locale, title),
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    if field_errors:
        body["errors"] = [{"pointer": e.pointer, "message": e.message} for e in field_errors]
    body.update(extra or {})
    response = JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)
    response.headers["Content-Language"] = locale
    return response


def render_domain_error(request: Request, error: errors.DomainError) -> JSONResponse:
    status = status_of(error)
    headers: dict[str, str] = {}
    if isinstance(error, errors.InvalidToken):
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    elif isinstance(error, errors.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(error, errors.InsufficientScope):
        scope = error.extra.get("scope", "")
        headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope", scope="{scope}"'
    if isinstance(error, errors.RateLimited) and "retry_after" in error.extra:
        headers["Retry-After"] = str(error.extra["retry_after"])
    return problem_response(
        request, status, error.type, error.title, error.detail, error.errors, error.extra, headers
    )


def _pointer_of(location: tuple[Any, ...]) -> str:
    source, *path = location or ("body",)
    return from_path(path) if source == "body" else from_path([source, *path])


def render_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    field_errors: list[errors.FieldError] = []
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            return _malformed_json(request, exc.body)
        field_errors.append(errors.FieldError(_pointer_of(tuple(item.get("loc", ()))), item.get("msg", "")))
    return problem_response(
        request,
        422,
        errors.ValidationFailed.type,
        errors.ValidationFailed.title,
        field_errors=field_errors,
    )


def _malformed_json(request: Request, document: Any) -> JSONResponse:
    if isinstance(document, bytes):
        document = document.decode("utf-8", "replace")
    text = document if isinstance(document, str) else ""
    pointer, message = "", "malformed JSON"
    try:
        json.loads(text)
    except json.JSONDecodeError as decode_error:
        pointer = of_syntax_error(text, decode_error)
        message = f"{decode_error.msg} at line {decode_error.lineno} column {decode_error.colno}"
    return problem_response(
        request,
        422,
        "/problems/malformed-json",
        errors.ValidationFailed.title,
        detail=message,
        field_errors=[errors.FieldError(pointer, message)],
    )


def render_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    error_cls = ERROR_BY_STATUS.get(exc.status_code)
    if error_cls is None:
        return problem_response(
            request, exc.status_code, "about:blank", str(exc.detail), headers=dict(exc.headers or {})
        )
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != error_cls.title else None
    return problem_response(
        request,
        exc.status_code,
        error_cls.type,
        error_cls.title,
        detail,
        headers=dict(exc.headers or {}),
    )
