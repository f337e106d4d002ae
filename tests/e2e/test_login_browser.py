"""In a real browser: a demo client admin signs in with French as the browser's
language and lands on their home page in French; a wrong password is refused in French."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live import LivePlatform

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CLIENT_ADMIN = "claire.admin@lumiere.example"


def _page(browser: Any, platform: LivePlatform) -> Any:
    context = browser.new_context(locale="fr-FR", extra_http_headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    page = context.new_page()
    page.goto(f"{platform.url}/login")
    return page


def test_client_admin_signs_in_and_sees_home_in_french(browser: Any, platform: LivePlatform) -> None:
    page = _page(browser, platform)
    assert page.locator("h1").inner_text() == "Se connecter"
    page.fill("#email", CLIENT_ADMIN)
    page.fill("#password", "bpo-demo-2026")
    page.click("button[type=submit]")
    page.wait_for_url(f"{platform.url}/home")
    assert page.get_by_test_id("home-title").inner_text() == "Bienvenue, Claire Martin"
    assert page.locator("html").get_attribute("lang") == "fr"
    assert "Assurances Lumière" in page.content()
    page.context.close()


def test_wrong_password_shows_the_french_error(browser: Any, platform: LivePlatform) -> None:
    page = _page(browser, platform)
    page.fill("#email", CLIENT_ADMIN)
    page.fill("#password", "mauvais-mot-de-passe")
    page.click("button[type=submit]")
    assert page.get_by_test_id("login-error").inner_text() == "Adresse e-mail ou mot de passe incorrect."
    assert page.url.endswith("/login")
    page.context.close()
