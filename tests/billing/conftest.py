"""A real localstripe server for the billing tests: started once, emptied before each test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.core.settings import Settings
from tests.live import free_port

STRIPE_KEY = "sk_test_bpo"  # localstripe takes any key shaped like a secret key
WEBHOOK_SECRET = "whsec_bpo_test"


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a localstripe server on 127.0.0.1, started from scratch for the run."""
    port = free_port()
    log_path = Path(tmp_path_factory.mktemp("localstripe")) / "localstripe.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localstripe", "--from-scratch", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/customers", auth=(STRIPE_KEY, ""), timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"localstripe did not answer in {timeout}s: {log_path.read_text()[-2000:]}")


@pytest.fixture
def stripe_url(localstripe: str) -> str:
    """localstripe, emptied for this test. Its webhook registrations survive the reset, and
    an earlier test's deliveries may still arrive (about a second late): handlers ignore
    what they do not know."""
    httpx.delete(f"{localstripe}/_config/data", timeout=10).raise_for_status()
    return localstripe


@pytest.fixture
def stripe_settings(settings: Settings, stripe_url: str) -> Settings:
    return settings.model_copy(
        update={
            "stripe_api_key": STRIPE_KEY,
            "stripe_api_base": stripe_url,
            "stripe_webhook_secret": WEBHOOK_SECRET,
        }
    )
