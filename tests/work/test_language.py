"""Language detection: accuracy on our own labelled texts, and the choice of detector kept honest.

The sample (``language_samples.json``) holds short back-office texts in the eleven
languages; ``bench/language_detection.py`` prints the full comparison.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from services.work import language
from services.work.language import SUPPORTED_LANGUAGES, detect, text_of

SAMPLES = json.loads((Path(__file__).parent / "language_samples.json").read_text(encoding="utf-8"))
ROOT = Path(__file__).resolve().parents[2]

# py3langid measured 1.000 on the sample; the margin absorbs a model update, not a regression.
MIN_ACCURACY = 0.98
MIN_ACCURACY_PER_LANGUAGE = 0.8


def _per_language_accuracy(classify: Callable[[str], str | None]) -> dict[str, float]:
    total, right = Counter[str](), Counter[str]()
    for sample in SAMPLES:
        total[sample["language"]] += 1
        right[sample["language"]] += classify(sample["text"]) == sample["language"]
    return {lang: right[lang] / total[lang] for lang in total}


def _overall(per_language: dict[str, float]) -> float:
    # Every language has the same number of texts, so the mean is the overall accuracy.
    return sum(per_language.values()) / len(per_language)


def _chosen(text: str) -> str | None:
    found = detect(text)
    return found.language if found else None


@pytest.fixture(scope="module")
def chosen_accuracy() -> dict[str, float]:
    return _per_language_accuracy(_chosen)


def test_sample_covers_every_supported_language_evenly() -> None:
    counts = Counter(sample["language"] for sample in SAMPLES)
    assert set(counts) == set(SUPPORTED_LANGUAGES)
    assert len(set(counts.values())) == 1
    assert min(counts.values()) >= 25


def test_detector_reaches_the_measured_accuracy(chosen_accuracy: dict[str, float]) -> None:
    assert _overall(chosen_accuracy) >= MIN_ACCURACY


def test_detector_is_accurate_on_every_language(chosen_accuracy: dict[str, float]) -> None:
    weak = {lang: acc for lang, acc in chosen_accuracy.items() if acc < MIN_ACCURACY_PER_LANGUAGE}
    assert weak == {}


def test_chosen_detector_beats_lingua_in_both_modes(chosen_accuracy: dict[str, float]) -> None:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, code.upper()) for code in SUPPORTED_LANGUAGES]
    for low_accuracy in (True, False):
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        detector = (builder.with_low_accuracy_mode() if low_accuracy else builder).build()
        predicted: dict[str, str | None] = {}
        for sample in SAMPLES:
            found = detector.detect_language_of(sample["text"])
            predicted[sample["text"]] = found.iso_code_639_1.name.lower() if found else None
        detector.unload_language_models()  # the high-accuracy models take hundreds of MiB
        assert _overall(chosen_accuracy) >= _overall(_per_language_accuracy(predicted.__getitem__))


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_has_no_language(text: str) -> None:
    assert detect(text) is None


def test_a_lone_ambiguous_word_has_no_language() -> None:
    assert detect("PDF") is None


def test_detection_carries_its_confidence() -> None:
    found = detect("Bonjour, la facture de mars ne correspond pas au bon de commande")
    assert found is not None
    assert found.language == "fr"
    assert 0.9 < found.confidence <= 1


def test_text_of_keeps_free_text_and_skips_identifiers() -> None:
    payload = {
        "customer_id": "3f1c9e0a-4b2d-4c8e-9f1a-2b3c4d5e6f70",
        "email": "jean.dupont@example.fr",
        "iban": "FR76 3000 6000 0112 3456 7890 189",
        "received_on": "2024-03-12",
        "amount": "1 234,56",
        "quantity": 3,
        "lines": [{"note": "Le colis est arrivé abîmé"}, {"sku": "ACME-2024-0001"}],
    }
    assert text_of("Réclamation livraison", payload) == "Réclamation livraison\nLe colis est arrivé abîmé"


def test_text_of_is_capped() -> None:
    payload = {"notes": ["Le client attend son remboursement depuis trois semaines"] * 100}
    assert len(text_of("Remboursement", payload)) == language.MAX_TEXT_CHARS


def test_importing_the_module_does_not_load_the_model() -> None:
    probe = (
        "import sys; from services.work import language; "
        "print(language._identifier.cache_info().currsize, 'py3langid' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]
