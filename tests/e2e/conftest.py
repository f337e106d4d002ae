from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import live


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.LivePlatform]:
    running = live.start(tmp_path_factory.mktemp("live"))
    yield running
    live.stop(running)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from tests.conftest import require

    require(
        Path("/usr/bin/chromium").exists(), "Debian's chromium is not installed (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
