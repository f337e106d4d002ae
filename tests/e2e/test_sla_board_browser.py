"""In a real browser: the account manager's SLA risk board loads, and its table is
fetched again by htmx, so a task submitted meanwhile appears without a reload."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.live import LivePlatform, api_headers

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIENT = "Brandt Logistik GmbH"  # in the demo account manager's portfolio


def _policy(platform: LivePlatform) -> None:
    operator = httpx.Client(
        base_url=platform.url, headers=api_headers(platform, "Backstage Operations"), timeout=30
    )
    organizations = platform.demo["organizations"]
    assert isinstance(organizations, list)
    tenant_id = next(o["id"] for o in organizations if o["name"] == CLIENT)
    answer = operator.post(
        "/v1/sla/policies",
        json={
            "name": "Rahmenvertrag 2026",
            "tenant_id": tenant_id,
            "targets": [
                {"metric": "first_response", "minutes": 60, "business_time": False},
                {"metric": "resolution", "minutes": 480, "business_time": False},
            ],
        },
    )
    assert answer.status_code in (201, 409), answer.text  # 409: another test of the run set it


def _submit(api: httpx.Client, queue_id: str, title: str) -> None:
    answer = api.post(
        "/v1/tasks",
        json={"queue_id": queue_id, "title": title, "payload": {"description": title}, "language": "de"},
    )
    assert answer.status_code == 201, answer.text


def test_the_risk_board_refreshes_its_table_in_place(browser: Any, platform: LivePlatform) -> None:
    _policy(platform)
    api = httpx.Client(base_url=platform.url, headers=api_headers(platform, CLIENT), timeout=30)
    queue = api.post("/v1/queues", json={"name": "Reklamationen", "task_kind": "support_ticket"}).json()
    _submit(api, queue["id"], "Sendung 4711 beschädigt")

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.goto(f"{platform.url}/sla")  # asks for a login, then comes back here
    page.fill("#email", "sofia.am@backstage.example")
    page.fill("#password", "bpo-demo-2026")
    page.click("button[type=submit]")
    page.wait_for_url(f"{platform.url}/sla")
    risk = page.get_by_test_id("risk")
    assert "Sendung 4711 beschädigt" in risk.inner_text()
    assert "Sendung 4712 verloren" not in risk.inner_text()
    first_render = page.get_by_test_id("risk-updated").get_attribute("data-at")
    page.evaluate("window.__same_page = true")

    _submit(api, queue["id"], "Sendung 4712 verloren")
    page.wait_for_function(
        "document.querySelector('[data-testid=risk]').innerText.includes('Sendung 4712 verloren')",
        timeout=25_000,  # the table is fetched every 15 s
    )
    assert page.evaluate("window.__same_page") is True  # replaced in place, not reloaded
    assert page.get_by_test_id("risk-updated").get_attribute("data-at") != first_render
    assert page.locator("[data-testid=risk] [data-testid=risk-table]").count() == 1  # not nested
    context.close()
