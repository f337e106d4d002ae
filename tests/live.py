"""A live platform for tests that need real processes: ``bpo serve`` (api, a real
Celery worker and beat) on 127.0.0.1, on its embedded default in a fresh data dir."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BPO = [sys.executable, "-m", "services.cli"]


@dataclass
class LivePlatform:
    url: str
    data_dir: Path
    env: dict[str, str]
    demo: dict[str, object]
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: Path, broker_url: str | None = None, timeout: float = 90) -> LivePlatform:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env["BPO_DATA_DIR"] = str(data_dir)
    env["BPO_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "true"  # test receivers listen on 127.0.0.1
    env["BPO_WEBHOOK_BACKOFF_SECONDS"] = "1"
    env["BPO_BULK_SYNC_MAX_BYTES"] = str(64 * 1024)  # so that a test file becomes an import job
    if broker_url:
        env["BPO_BROKER_URL"] = broker_url
    seeded = subprocess.run(
        [*BPO, "demo", "seed", "--json"], env=env, capture_output=True, check=True, timeout=120
    )
    demo = json.loads(seeded.stdout.decode().strip().splitlines()[-1])
    port = free_port()
    log = (data_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [*BPO, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bpo serve exited: {(data_dir / 'serve.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return LivePlatform(url, data_dir, env, demo, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(LivePlatform(url, data_dir, env, demo, process))
    raise RuntimeError(f"bpo serve not ready in {timeout}s: {(data_dir / 'serve.log').read_text()[-3000:]}")


def stop(platform: LivePlatform) -> None:
    platform.process.terminate()
    try:
        platform.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        platform.process.kill()


def api_headers(platform: LivePlatform, organization_name: str) -> dict[str, str]:
    """A bearer token of a new API client of the named demo organisation."""
    organizations = platform.demo["organizations"]
    assert isinstance(organizations, list)
    org_id = next(o["id"] for o in organizations if o["name"] == organization_name)
    created = subprocess.run(
        [*BPO, "api-client", "create", "--org", org_id], env=platform.env, capture_output=True, check=True
    )
    client = json.loads(created.stdout.decode().strip().splitlines()[-1])
    answer = httpx.post(
        f"{platform.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def until(check: Any, seconds: float = 60) -> Any:
    """``check()``'s first true answer, polled every half second; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError("not done in time")
