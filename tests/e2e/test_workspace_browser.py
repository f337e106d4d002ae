"""In real browsers: the Romanian demo agent signs in, goes online, takes the next task (a
French ticket) and asks the client a question; the French client sees it in the portal,
in French, and answers; the agent's open page shows the answer without a reload, and the
agent resolves the task."""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.demo_work import SUPPORT_FR
from tests.live import LivePlatform

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _sign_in(browser: Any, platform: LivePlatform, email: str, locale: str) -> Any:
    context = browser.new_context(locale=locale, extra_http_headers={"Accept-Language": locale})
    page = context.new_page()
    page.goto(f"{platform.url}/login")
    page.fill("#email", email)
    page.fill("#password", "bpo-demo-2026")
    page.click("button[type=submit]")
    return page


def test_an_agent_takes_a_french_ticket_asks_the_client_and_resolves_it(
    browser: Any, platform: LivePlatform
) -> None:
    agent = _sign_in(browser, platform, "mihai.agent@carpati.example", "ro-RO")
    agent.wait_for_url(f"{platform.url}/workspace")
    if agent.locator("[data-testid=go-online]").count():  # another live test may have left them online
        agent.click("[data-testid=go-online]")
    agent.wait_for_selector("[data-testid=go-offline]")
    agent.click("[data-testid=next-task]")
    agent.wait_for_selector("[data-testid=task-title]")
    title = agent.get_by_test_id("task-title").inner_text()
    assert title in {t for t, _text in SUPPORT_FR}, title  # a French ticket of Lumière's
    task_url = agent.url
    task_id = re.search(r"/workspace/tasks/([0-9a-f-]+)", task_url).group(1)  # type: ignore[union-attr]
    agent.click("[data-testid=action-start]")
    agent.fill("[data-testid=question]", "Pouvez-vous nous envoyer le numéro de la facture concernée ?")
    agent.click("[data-testid=action-ask_client]")
    agent.wait_for_selector("text=Pouvez-vous nous envoyer le numéro de la facture concernée ?")

    client = _sign_in(browser, platform, "claire.admin@lumiere.example", "fr-FR")
    client.wait_for_url(re.compile(r".*/home"))
    client.goto(f"{platform.url}/portal/tasks/{task_id}")
    assert client.get_by_test_id("task-status").inner_text() == "En attente de votre réponse"
    conversation = client.inner_text("#comments")
    assert "Pouvez-vous nous envoyer le numéro de la facture concernée ?" in conversation
    assert "Mihai ·" in conversation and "Dumitru" not in conversation  # the name Carpați shows clients
    client.fill("#c-body", "Il s'agit de la facture F-2026-118.")
    client.click("#comments button[type=submit]")
    client.wait_for_selector("text=Il s'agit de la facture F-2026-118.")
    client.click("button[value=client_replied]")
    client.wait_for_selector("[data-testid=task-status]")

    # No reload: the agent's open page refreshes its live part (every 5 s).
    assert agent.url == task_url
    agent.wait_for_selector("#conversation >> text=Il s'agit de la facture F-2026-118.", timeout=15_000)
    agent.wait_for_selector("[data-testid=action-resolve]", timeout=15_000)
    agent.fill("[data-testid=question]", "Merci")  # the question form is back; a refresh keeps what is typed
    with agent.expect_response(lambda r: r.url.endswith("/live"), timeout=15_000):
        pass
    assert agent.input_value("[data-testid=question]") == "Merci"
    agent.click("[data-testid=action-resolve]")
    agent.wait_for_url(f"{platform.url}/workspace")
    assert title not in agent.inner_text("main")
    agent.context.close()
    client.context.close()
