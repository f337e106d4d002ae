"""The command line: JSON on the last line for what it creates, one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _bpo(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env["BPO_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _create_client(data_dir: Path, name: str, country: str, password: str | None = None):  # type: ignore[no-untyped-def]
    admin = ("--admin-email", "admin@dossiers.example", "--admin-password", password) if password else ()
    return _bpo(data_dir, "org", "create", "--kind", "client", "--name", name, "--country", country, *admin)


def test_org_and_api_client_creation_print_json(tmp_path: Path) -> None:
    created = _create_client(tmp_path, "Dossiers Rapides", "FR", password="long-enough-pass")
    assert created.returncode == 0, created.stderr
    org_id = json.loads(created.stdout.strip().splitlines()[-1])["id"]
    client = _bpo(tmp_path, "api-client", "create", "--org", org_id, "--scopes", "org:read")
    assert client.returncode == 0, client.stderr
    answer = json.loads(client.stdout.strip().splitlines()[-1])
    assert answer["client_id"].startswith("bpoc_") and answer["client_secret"].startswith("bpocs_")
    assert answer["scopes"] == "org:read"


def test_bad_input_is_one_line_and_keeps_nothing(tmp_path: Path) -> None:
    bad_country = _create_client(tmp_path, "X", "XX")
    assert bad_country.returncode == 1
    assert bad_country.stderr.strip().splitlines() == [
        "error: The request is not valid; country: 'XX' is not an ISO 3166-1 alpha-2 country code"
    ]
    short_password = _create_client(tmp_path, "Y", "FR", password="short")
    assert short_password.returncode == 1 and "password" in short_password.stderr
    # the organisation of the failed command was rolled back with it: the name is free
    again = _create_client(tmp_path, "Y", "FR")
    assert again.returncode == 0, again.stderr
    unknown = _bpo(tmp_path, "api-client", "create", "--org", "01a20737-1f4a-72f0-9c8a-8c48ac7f967c")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "error: Not found"
