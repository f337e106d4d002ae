"""Offline language detection for incoming tasks, restricted to the platform's languages.

py3langid was chosen over lingua by accuracy on ``tests/work/language_samples.json``
(341 short business texts, 31 per language; ``bench/language_detection.py``):

    detector                          accuracy  worst language  µs/text  RSS growth
    py3langid                            1.000        all 1.000      145      92 MiB
    lingua, low accuracy, preloaded      0.968         ro 0.839      154      25 MiB
    lingua, high accuracy, preloaded     0.997         sv 0.968      372     379 MiB

py3langid is the most accurate. Lingua's high-accuracy mode comes within a point, where
the lighter detector would win anyway, and takes four times the memory; its light mode
loses three points, worst on Romanian. py3langid (>= 0.4, whose probabilities are
calibrated by text length) still holds ~90 MiB once loaded (numpy and its tables), so
it is loaded on first use, never at import: the API process that only imports this
module stays small, and detection belongs in the worker.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "es", "it", "pl", "ro", "hu", "bg", "sv", "da")

# Every text of the labelled sample is detected with at least 0.67, while single
# ambiguous words and codes ("Merci", "Invoice", "PDF", "Ticket #4411") stay below 0.5:
# under this we would rather record no language than a guess.
MIN_CONFIDENCE = 0.5

# Enough text for a confident answer; bounds the work a very large payload can cause.
MAX_TEXT_CHARS = 2_000

# A word: letters, possibly joined by an apostrophe or hyphen ("l'ancienne", "să-mi").
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_EDGE_PUNCTUATION = ".,;:!?¿¡()[]\"'«»“”„"


@dataclass(frozen=True)
class Detection:
    language: str  # BCP 47 primary subtag, one of SUPPORTED_LANGUAGES
    confidence: float  # 0..1


@functools.cache
def _identifier() -> Any:
    # Imported here: importing py3langid pulls numpy, and loading decompresses the model.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # norm_probs turns the scores into probabilities over the languages kept.
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(SUPPORTED_LANGUAGES))
    return identifier


def detect(text: str) -> Detection | None:
    """The language of ``text``, or None when there is no text or no confident answer."""
    text = text.strip()[:MAX_TEXT_CHARS]
    if not text:
        return None
    language, confidence = _identifier().classify(text)
    if confidence < MIN_CONFIDENCE:
        return None
    return Detection(language=str(language), confidence=float(confidence))


def text_of(title: str, payload: dict[str, Any]) -> str:
    """The title and the free text of a task payload, the input of :func:`detect`."""
    parts: list[str] = []
    size = 0
    for part in (title.strip(), *_free_text(payload)):
        if not part:
            continue
        parts.append(part)
        size += len(part) + 1
        if size >= MAX_TEXT_CHARS:
            break
    return "\n".join(parts)[:MAX_TEXT_CHARS]


def _free_text(value: Any) -> Iterator[str]:
    """String values of a JSON document, depth first, that read as prose."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _free_text(item)
    elif isinstance(value, list):
        for item in value:
            yield from _free_text(item)
    elif isinstance(value, str) and _is_prose(value):
        yield value.strip()


def _is_prose(value: str) -> bool:
    # Ids, emails, IBANs, dates, amounts and phone numbers carry no language and mislead
    # the detector. Counting real words rejects them even when they contain spaces
    # ("FR76 3000 6000 ...", "12 March 2024"): prose has two words, or one long word
    # (a German compound such as "Umsatzsteuer-Identifikationsnummer").
    words = [token for token in value.split() if _WORD.fullmatch(token.strip(_EDGE_PUNCTUATION))]
    return len(words) >= 2 or any(len(word) > 20 for word in words)


@lru_cache(maxsize=4096)
def normalize(tag: str) -> str | None:
    """A BCP 47 tag in its usual casing ("fr", "fr-BE", "zh-Hant"), or None if Babel does not know it."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)
