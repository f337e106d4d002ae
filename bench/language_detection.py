"""Offline language detection: lingua against py3langid on our own texts.

Each candidate runs in a fresh interpreter so its memory is measured alone: the
resident memory growth from importing the package and loading its model (restricted
to the eleven languages of the platform), the accuracy on the labelled sample of
short business texts kept with the tests, and the mean detection time per text.
py3langid is the baseline of the ratios. Run: ``.venv/bin/python bench/language_detection.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "work" / "language_samples.json"
LANGUAGES = ("en", "fr", "de", "es", "it", "pl", "ro", "hu", "bg", "sv", "da")
MODES = ("py3langid", "lingua-low", "lingua-high")
REPEATS = 3  # passes over the sample for timing; the first, untimed, warms lazy models


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _measure(mode: str) -> dict[str, Any]:
    """Runs in the child: load one detector, then score and time it on the sample."""
    samples = json.loads(SAMPLES.read_text(encoding="utf-8"))
    before = _rss_mib()
    started = time.perf_counter()
    if mode == "py3langid":
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages(list(LANGUAGES))

        def detect(text: str) -> str | None:
            return str(identifier.classify(text)[0])
    else:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        builder = LanguageDetectorBuilder.from_iso_codes_639_1(
            *(getattr(IsoCode639_1, code.upper()) for code in LANGUAGES)
        ).with_preloaded_language_models()
        if mode == "lingua-low":
            builder = builder.with_low_accuracy_mode()
        detector = builder.build()

        def detect(text: str) -> str | None:
            found = detector.detect_language_of(text)
            return found.iso_code_639_1.name.lower() if found else None

    load_s = time.perf_counter() - started
    loaded = _rss_mib()
    predictions = [detect(s["text"]) for s in samples]
    started = time.perf_counter()
    for _ in range(REPEATS):
        for s in samples:
            detect(s["text"])
    per_text_us = (time.perf_counter() - started) / (REPEATS * len(samples)) * 1e6
    total, right = Counter[str](), Counter[str]()
    for s, predicted in zip(samples, predictions, strict=True):
        total[s["language"]] += 1
        right[s["language"]] += predicted == s["language"]
    per_language = {lang: right[lang] / total[lang] for lang in LANGUAGES}
    return {
        "mode": mode,
        "accuracy": sum(right.values()) / len(samples),
        "per_language": per_language,
        "load_s": load_s,
        "rss_load_mib": loaded - before,
        "rss_peak_mib": _rss_mib() - before,
        "per_text_us": per_text_us,
        "errors": [
            (s["language"], p, s["text"])
            for s, p in zip(samples, predictions, strict=True)
            if p != s["language"]
        ],
    }


def _run(mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode], check=True, capture_output=True, text=True, cwd=ROOT
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    results = [_run(mode) for mode in MODES]
    count = len(json.loads(SAMPLES.read_text(encoding="utf-8")))
    print(f"{count} labelled texts, {len(LANGUAGES)} languages; RSS growth over a bare interpreter")
    print(f"{'mode':<12} {'accuracy':>8} {'worst language':>15} {'µs/text':>8} {'load s':>7} {'RSS MiB':>8}")
    for r in results:
        worst = min(r["per_language"].items(), key=lambda item: item[1])
        print(
            f"{r['mode']:<12} {r['accuracy']:>8.3f} {worst[0] + f' {worst[1]:.3f}':>15} "
            f"{r['per_text_us']:>8.0f} {r['load_s']:>7.2f} {r['rss_peak_mib']:>8.0f}"
        )
    print()
    print("per language: " + " ".join(f"{lang:>5}" for lang in LANGUAGES))
    for r in results:
        print(f"{r['mode']:<13} " + " ".join(f"{r['per_language'][lang]:>5.2f}" for lang in LANGUAGES))
    print()
    base = results[0]
    for r in results[1:]:
        points = 100 * (r["accuracy"] - base["accuracy"])
        time_ratio = r["per_text_us"] / base["per_text_us"]
        rss_ratio = r["rss_peak_mib"] / base["rss_peak_mib"]
        print(
            f"{r['mode']} vs {base['mode']}: accuracy {points:+.1f} points, "
            f"time {time_ratio:.1f}x, RSS {rss_ratio:.1f}x"
        )
    if "-v" in sys.argv:
        for r in results:
            print(f"\n{r['mode']} errors:")
            for expected, predicted, text in r["errors"]:
                print(f"  {expected} -> {predicted}: {text}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_measure(sys.argv[2])))
    else:
        main()
