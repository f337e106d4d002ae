"""The language of a task, from the free-text fields its kind declares."""

from __future__ import annotations

from typing import Any

from services.work import kinds, language
from services.work.models import LanguageSource


def detected_language(kind: kinds.Kind, title: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The language columns as the detector sees the task's text."""
    detected = language.detect(language.text_of(title, _text_fields(kind, payload)))
    if detected is None:
        return {"language_source": LanguageSource.UNDETERMINED}
    return {
        "language": detected.language,
        "language_confidence": detected.confidence,
        "language_source": LanguageSource.DETECTED,
    }


def _text_fields(kind: kinds.Kind, payload: dict[str, Any]) -> dict[str, Any]:
    """The kind's declared free-text fields if it declares any, else the whole payload."""
    if not kind.text_fields:
        return payload
    return {name: payload[name] for name in kind.text_fields if name in payload}
