"""In a real browser, in French: a client admin defines a queue, submits a task through
the form built from the kind's schema, comments on it and sees it in the list."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live import LivePlatform

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_person_submits_work_through_the_portal(browser: Any, platform: LivePlatform) -> None:
    context = browser.new_context(locale="fr-FR", extra_http_headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    page = context.new_page()
    page.goto(f"{platform.url}/portal/queues")  # asks for a login, then comes back here
    page.fill("#email", "claire.admin@lumiere.example")
    page.fill("#password", "bpo-demo-2026")
    page.click("button[type=submit]")
    page.wait_for_url(f"{platform.url}/portal/queues")

    page.fill("#q-name", "Sinistres habitation")
    page.select_option("#q-kind", "claim")
    page.fill("#q-languages", "fr")
    page.click("form[action='/portal/queues'] button[type=submit]")
    page.wait_for_url(f"{platform.url}/portal/queues")
    assert "Sinistres habitation" in page.get_by_test_id("queues").inner_text()

    # the queue's own row: the demo's queues are listed too
    page.locator("tr", has_text="Sinistres habitation").locator("a[href*='/portal/tasks/new']").click()
    page.wait_for_selector("[data-testid=task-form]")
    page.fill("#f-title", "Dégât des eaux cuisine")
    page.select_option("#f-claim_type", "insurance")
    page.fill("#f-description", "Fuite sous l'évier, parquet abîmé sur deux mètres carrés.")
    page.fill("#f-claimed_amount_minor", "125000")
    page.fill("#f-ref", "HAB-2026-118")
    page.click("[data-testid=task-form] button[type=submit]")
    page.wait_for_selector("[data-testid=task-title]")
    assert page.get_by_test_id("task-title").inner_text() == "Dégât des eaux cuisine"
    assert (
        page.get_by_test_id("task-status").inner_text() == "En file d\u2019attente"
    )  # the typographic apostrophe of the catalog

    page.fill("#c-body", "Photos disponibles sur demande.")
    page.click("#comments button[type=submit]")
    page.wait_for_selector("text=Photos disponibles sur demande.")
    page.goto(f"{platform.url}/portal/tasks?external_ref=HAB-2026-118")
    assert "Dégât des eaux cuisine" in page.get_by_test_id("tasks").inner_text()
    context.close()
