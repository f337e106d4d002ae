"""Jinja2 rendering with the viewer's locale: translations and Babel formatting."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_date, format_datetime, format_timedelta
from babel.lists import format_list
from babel.numbers import format_decimal, format_percent
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
    "waiting_on_third_party": i18n._("Waiting on a third party"),
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
# Why an agent was given no task (``routing.claim``), and what a candidate failed.
ROUTING_LABELS = {
    "presence": i18n._("You are offline: go online to take work."),
    "capacity": i18n._("You hold as many tasks as you may: finish or release one first."),
    "calendar": i18n._("Your team's hours are over: no queue may be worked now."),
    "nothing_eligible": i18n._("No queue of your team has work you may take."),
    "nothing_queued": i18n._("Nothing is waiting in your queues. Well done!"),
    "residency": i18n._("The data may not be handled in this country"),
    "language": i18n._("Nobody speaks the task's language at the level required"),
    "skill": i18n._("A required skill is missing"),
    "engagement": i18n._("No team is engaged on the queue"),
}
# What kind of routing decision a trace shows (``RoutingDecision.kind``, and the
# explanation computed for a waiting task).
DECISION_LABELS = {
    "pull": i18n._("Taken by the agent"),
    "push": i18n._("Offer accepted"),
    "offer": i18n._("Offered"),
    "manual": i18n._("Assigned by hand"),
    "reopened": i18n._("Back to its agent on reopening"),
    "explain": i18n._("Why it is waiting, now"),
}
PRESENCE_LABELS = {"online": i18n._("Online"), "away": i18n._("Away"), "offline": i18n._("Offline")}
MODE_LABELS = {"pull": i18n._("Agents pull"), "push": i18n._("Offered to agents")}
ACTION_LABELS = {
    "start": i18n._("Start"),
    "ask_client": i18n._("Ask the client"),
    "client_replied": i18n._("I have replied"),
    "await_third_party": i18n._("Wait on a third party"),
    "third_party_replied": i18n._("The third party replied"),
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
METRIC_LABELS = {
    "first_response": i18n._("First response"),
    "resolution": i18n._("Resolution"),
    "next_update": i18n._("Next update"),
}
PAUSE_LABELS = {
    "waiting_on_client": i18n._("Waiting on the client"),
    "waiting_on_third_party": i18n._("Waiting on a third party"),
}
TRIGGER_LABELS = {"warning": i18n._("Warning"), "breach": i18n._("Breach")}


def format_ratio(value: float, locale: Locale | str) -> str:
    """A share as a percentage with at most one decimal, in the locale's pattern ("33,3 %")."""
    babel_locale = Locale.parse(locale)
    pattern = babel_locale.percent_formats[None].pattern.split(";")[0]
    last_digit = pattern.rfind("0")
    return format_percent(value, pattern[: last_digit + 1] + ".#" + pattern[last_digit + 1 :], babel_locale)


def format_duration(seconds: int, locale: Locale | str) -> str:
    """A span for people: its two leading units ("2 h 15 min") under a week, else one ("3 wk")."""
    seconds = abs(int(seconds))
    if seconds >= 7 * 86400:
        return format_timedelta(timedelta(seconds=seconds), format="short", locale=locale)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    units: list[tuple[Literal["day", "hour", "minute"], int]] = [
        ("day", days),
        ("hour", hours),
        ("minute", rest // 60),
    ]
    lead = next((i for i, (_unit, count) in enumerate(units) if count), len(units) - 1)
    # Each amount is below the next larger unit, so a threshold of 1 keeps it exact.
    parts = [
        format_timedelta(
            timedelta(**{unit + "s": count}), threshold=1, granularity=unit, format="short", locale=locale
        )
        for unit, count in units[lead : lead + 2]
        if count or unit == units[lead][0]
    ]
    try:
        return format_list(parts, style="unit-narrow", locale=locale)
    except KeyError:  # a locale without a narrow unit list
        return " ".join(parts)


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

    def day(value: date | None, format: str = "medium") -> str:
        return "—" if value is None else format_date(value, format=format, locale=babel_locale)

    def number(value: float | int) -> str:
        return format_decimal(value, locale=babel_locale)

    def country(code: str) -> str:
        return babel_locale.territories.get(code, code)

    def percent(value: float | None) -> str:
        return "—" if value is None else format_ratio(value, babel_locale)

    def duration(seconds: int) -> str:
        return format_duration(seconds, babel_locale)

    def time_left(seconds: int | None, overdue: bool = False) -> str:
        """To a due time, from now: "in 2 h 15 min", "overdue by 20 min"."""
        if seconds is None:
            return "—"
        if overdue or seconds < 0:
            if abs(seconds) < 60:
                return gettext("overdue")
            return gettext("overdue by %(time)s", time=duration(seconds))
        if seconds < 60:
            return gettext("due in less than a minute")
        return gettext("in %(time)s", time=duration(seconds))

    return {
        "_": gettext,
        "gettext": gettext,
        "ngettext": ngettext,
        "when": when,
        "day": day,
        "number": number,
        "country": country,
        "percent": percent,
        "duration": duration,
        "time_left": time_left,
        "language_name": i18n.language_name,
        "weekdays": babel_locale.days["format"]["wide"],  # 0 Monday .. 6 Sunday, in the viewer's language
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
                ("metric_labels", METRIC_LABELS),
                ("pause_labels", PAUSE_LABELS),
                ("trigger_labels", TRIGGER_LABELS),
                ("routing_labels", ROUTING_LABELS),
                ("presence_labels", PRESENCE_LABELS),
                ("decision_labels", DECISION_LABELS),
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
