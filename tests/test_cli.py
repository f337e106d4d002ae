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


def test_org_and_api_client_creation_print_json(tmp_path: Path) -> None:
    created = _bpo(
        tmp_path,
        "org",
        "create",
        "--kind",
        "client",
        "--name",
        "Dossiers Rapides",
        "--country",
        "FR",
        "--admin-email",
        "admin@dossiers.example",
        "--admin-password",
        "long-enough-pass",
    )
    assert created.returncode == 0, created.stderr
    org_id = json.loads(created.stdout.strip().splitlines()[-1])["id"]
    client = _bpo(tmp_path, "api-client", "create", "--org", org_id, "--scopes", "org:read")
    assert client.returncode == 0, client.stderr
    answer = json.loads(client.stdout.strip().splitlines()[-1])
    assert answer["client_id"].startswith("bpoc_") and answer["client_secret"].startswith("bpocs_")
    assert answer["scopes"] == "org:read"


def test_bad_input_is_one_line_and_keeps_nothing(tmp_path: Path) -> None:
    bad_country = _bpo(tmp_path, "org", "create", "--kind", "client", "--name", "X", "--country", "XX")
    assert bad_country.returncode == 1
    assert bad_country.stderr.strip().splitlines() == [
        "error: The request is not valid; country: 'XX' is not an ISO 3166-1 alpha-2 country code"
    ]
    short_password = _bpo(
        tmp_path,
        "org",
        "create",
        "--kind",
        "client",
        "--name",
        "Y",
        "--country",
        "FR",
        "--admin-email",
        "y@y.example",
        "--admin-password",
        "short",
    )
    assert short_password.returncode == 1 and "password" in short_password.stderr
    # the organisation of the failed command was rolled back with it: the name is free
    again = _bpo(tmp_path, "org", "create", "--kind", "client", "--name", "Y", "--country", "FR")
    assert again.returncode == 0, again.stderr
    unknown = _bpo(tmp_path, "api-client", "create", "--org", "01a20737-1f4a-72f0-9c8a-8c48ac7f967c")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "error: Not found"
