"""Catalogs: the template matches the code, and every catalog translates all of it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from services.core import i18n

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")
REQUIRED = {"en", "fr"}


def _ids(path: Path) -> set[str]:
    with path.open("rb") as handle:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}


def test_messages_pot_is_up_to_date(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "--no-location",
            "-o",
            str(fresh),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert _ids(fresh) == _ids(ROOT / "locales" / "messages.pot"), (
        "run: pybabel extract -F babel.cfg --no-location --sort-output -o locales/messages.pot ."
    )


def test_required_locales_exist() -> None:
    assert set(i18n.available_locales()) >= REQUIRED


@pytest.mark.parametrize("locale", sorted(set(i18n.available_locales())))
def test_catalog_translates_every_message(locale: str) -> None:
    template = _ids(ROOT / "locales" / "messages.pot")
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    problems = []
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            problems.append(f"untranslated: {key!r}")
        for text in strings:
            if set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(key)):
                problems.append(f"placeholders differ: {key!r} -> {text!r}")
    missing = template - {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    assert not problems and not missing, problems + [f"missing: {m!r}" for m in sorted(missing)]


def test_negotiation_prefers_user_then_browser_then_organisation() -> None:
    assert i18n.negotiate("fr", "de-DE,de;q=0.9", "es") == "fr"
    assert i18n.negotiate(None, "xx, fr-BE;q=0.8, en;q=0.5", "es") == "fr"
    assert i18n.negotiate(None, None, "fr") == "fr"
    assert i18n.negotiate(None, "tlh", None) == "en"


def test_translation_of_a_known_message() -> None:
    assert i18n.gettext("fr", "Wrong email or password.") == "Adresse e-mail ou mot de passe incorrect."
