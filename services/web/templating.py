"""Jinja2 rendering with the viewer's locale: translations and Babel formatting."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from services.core import i18n

ROLE_LABELS = {
    "client_admin": i18n._("Client administrator"),
    "client_submitter": i18n._("Submitter"),
    "client_viewer": i18n._("Viewer"),
    "provider_admin": i18n._("Provider administrator"),
    "team_lead": i18n._("Team lead"),
    "agent": i18n._("Agent"),
    "account_manager": i18n._("Account manager"),
    "platform_admin": i18n._("Platform administrator"),
}
KIND_LABELS = {
    "client": i18n._("Client"),
    "provider": i18n._("Provider"),
    "operator": i18n._("Operator"),
}

STATUS_LABELS = {
    "new": i18n._("New"),
    "queued": i18n._("Queued"),
    "offered": i18n._("Offered"),
    "assigned": i18n._("Assigned"),
    "in_progress": i18n._("In progress"),
    "waiting_on_client": i18n._("Waiting on you"),
    "escalated": i18n._("Escalated"),
    "reopened": i18n._("Reopened"),
    "resolved": i18n._("Resolved"),
    "closed": i18n._("Closed"),
    "cancelled": i18n._("Cancelled"),
}
PRIORITY_LABELS = {
    "low": i18n._("Low"),
    "normal": i18n._("Normal"),
    "high": i18n._("High"),
    "urgent": i18n._("Urgent"),
}
MODE_LABELS = {"pull": i18n._("Agents pull"), "push": i18n._("Offered to agents")}
ACTION_LABELS = {
    "start": i18n._("Start"),
    "ask_client": i18n._("Ask the client"),
    "client_replied": i18n._("I have replied"),
    "resolve": i18n._("Resolve"),
    "close": i18n._("Close"),
    "cancel": i18n._("Cancel the task"),
    "escalate": i18n._("Escalate"),
    "reopen": i18n._("Reopen"),
}
EVENT_LABELS = {
    "updated": i18n._("Changed"),
    "commented": i18n._("Commented"),
    "attached": i18n._("Attached a file"),
}
IMPORT_LABELS = {
    "pending": i18n._("Waiting"),
    "running": i18n._("Importing"),
    "succeeded": i18n._("Done"),
    "failed": i18n._("Failed"),
}
DELIVERY_LABELS = {
    "pending": i18n._("Pending"),
    "succeeded": i18n._("Delivered"),
    "dead": i18n._("Given up"),
}

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        extensions=["jinja2.ext.i18n"],
        autoescape=True,
    )
)


def locale_helpers(locale: str, timezone: str | None) -> dict[str, Any]:
    """Functions the templates use, bound to the viewer's locale and zone."""
    translations = i18n.translations(locale)
    babel_locale = Locale.parse(locale)

    def gettext(message: str, **variables: Any) -> str:
        text = translations.gettext(message)
        return text % variables if variables else text

    def ngettext(singular: str, plural: str, count: int, **variables: Any) -> str:
        text = translations.ngettext(singular, plural, count)
        return text % {"num": count, **variables}

    def when(value: datetime | None, format: str = "medium") -> str:
        if value is None:
            return "—"
        return format_datetime(value, format=format, tzinfo=ZoneInfo(timezone or "UTC"), locale=babel_locale)

    def number(value: float | int) -> str:
        return format_decimal(value, locale=babel_locale)

    def country(code: str) -> str:
        return babel_locale.territories.get(code, code)

    return {
        "_": gettext,
        "gettext": gettext,
        "ngettext": ngettext,
        "when": when,
        "number": number,
        "country": country,
        "language_name": i18n.language_name,
        "role_labels": ROLE_LABELS,
        "kind_labels": KIND_LABELS,
        # Translated already: templates show them as they are.
        **{
            name: {key: translations.gettext(label) for key, label in labels.items()}
            for name, labels in (
                ("status_labels", STATUS_LABELS),
                ("priority_labels", PRIORITY_LABELS),
                ("mode_labels", MODE_LABELS),
                ("action_labels", ACTION_LABELS),
                ("event_labels", EVENT_LABELS),
                ("import_labels", IMPORT_LABELS),
                ("delivery_labels", DELIVERY_LABELS),
            )
        },
    }


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    locale: str = request.state.locale
    timezone: str | None = getattr(request.state, "timezone", None)
    full = {
        "request": request,
        "locale": locale,
        "locales": i18n.available_locales(),
        "csrf_token": request.state.csrf_token,
        **locale_helpers(locale, timezone),
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    response.headers["Content-Language"] = locale
    return response
