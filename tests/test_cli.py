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


def _client_queue(data_dir: Path) -> str:
    from services.core.database import Database
    from tenants import service as tenancy
    from tenants.scoping import AccessScope, bind
    from tests.factories import make_queue

    created = _create_client(data_dir, "Import Client", "FR")
    org_id = json.loads(created.stdout.strip().splitlines()[-1])["id"]
    database = Database(f"sqlite:///{data_dir / 'bpo.sqlite'}")
    with database.session() as session:
        bind(session, AccessScope.everything())
        import uuid

        organization = tenancy.get_organization(session, uuid.UUID(org_id))
    queue = make_queue(database, organization)
    database.engine.dispose()
    return str(queue.id)


def test_tasks_import_takes_good_rows_and_reports_bad_ones(tmp_path: Path) -> None:
    queue_id = _client_queue(tmp_path)
    source = tmp_path / "tickets.csv"
    source.write_text(
        "title,description\nFacture,Débitée deux fois\nVide,\nColis,Jamais arrivé\n", encoding="utf-8"
    )
    report = tmp_path / "report.csv"
    done = _bpo(tmp_path, "tasks", "import", str(source), "--queue", queue_id, "--report", str(report))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    assert answer["rejected_rows"][0]["row"] == 2
    assert report.read_text().splitlines()[2].startswith("2,rejected,,description,")


def test_tasks_import_names_a_bad_file_in_one_line(tmp_path: Path) -> None:
    queue_id = _client_queue(tmp_path)
    source = tmp_path / "tickets.csv"
    source.write_text("title;description\nFacture;Débitée\n", encoding="utf-8")
    done = _bpo(tmp_path, "tasks", "import", str(source), "--queue", queue_id)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "semicolon" in line
    unknown = _bpo(tmp_path, "tasks", "import", str(source), "--queue", "not-a-uuid")
    assert unknown.returncode == 1 and "--queue" in unknown.stderr


def test_billing_close_makes_one_invoice_per_client_and_closing_again_changes_nothing(tmp_path: Path) -> None:
    seeded = _bpo(tmp_path, "demo", "seed", "--json")
    assert seeded.returncode == 0, seeded.stderr
    period = json.loads(seeded.stdout.strip().splitlines()[-1])["invoices"][0]["period"]
    first = _bpo(tmp_path, "billing", "close", "--period", period, "--finalise")
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout.strip().splitlines()[-1])
    assert made["clients"] == 4 and len(made["invoices"]) == 4  # the demo closed them already: found
    again = json.loads(_bpo(tmp_path, "billing", "close", "--period", period).stdout.strip().splitlines()[-1])
    assert sorted(again["invoices"]) == sorted(made["invoices"])


def test_billing_close_names_a_bad_period_in_one_line(tmp_path: Path) -> None:
    answer = _bpo(tmp_path, "billing", "close", "--period", "2026-13")
    assert answer.returncode == 1
    assert answer.stderr.strip().splitlines() == ["error: --period must be a month as YYYY-MM, got '2026-13'"]


def test_agent_create_makes_a_providers_agent_and_refuses_others_in_one_line(tmp_path: Path) -> None:
    from services.core.database import Database
    from tenants.principal import OrgKind, Role
    from tests.factories import make_org, make_team, make_user

    assert _bpo(tmp_path, "db", "upgrade").returncode == 0
    database = Database(f"sqlite:///{tmp_path / 'bpo.sqlite'}")
    provider, other = make_org(database, OrgKind.PROVIDER, country="RO"), make_org(database, OrgKind.PROVIDER)
    team = make_team(database, provider)
    agent = make_user(database, provider, [Role.AGENT], email="ioana@carpati.test")
    lead = make_user(database, provider, [Role.TEAM_LEAD], email="lead@carpati.test")
    stranger = make_user(database, other, [Role.AGENT], email="agent@other.test")
    database.engine.dispose()

    def create(email: str, team_id: str = str(team.id)) -> subprocess.CompletedProcess[str]:
        return _bpo(tmp_path, "agent", "create", "--email", email, "--team", team_id, "--capacity", "2")

    made = create(agent.upper())
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout.strip().splitlines()[-1])
    assert answer["team_id"] == str(team.id) and answer["id"]
    for email, team_id, message in (
        (
            agent,
            str(team.id),
            "error: the user is an agent already; user_id: already an agent",
        ),
        (lead, str(team.id), "error: the user does not hold the agent role; user_id: not an agent"),
        (stranger, str(team.id), "error: no such user; user_id: no such user in the team's organisation"),
        ("nobody@carpati.test", str(team.id), "error: no user nobody@carpati.test"),
        (agent, "team-7", "error: --team must be a team id (a UUID), got 'team-7'"),
    ):
        refused = create(email, team_id)
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [message], refused.stderr


def test_demo_simulate_plays_the_seeded_agents_at_work(tmp_path: Path) -> None:
    assert _bpo(tmp_path, "demo", "seed", "--json").returncode == 0
    played = _bpo(tmp_path, "demo", "simulate", "--minutes", "3")
    assert played.returncode == 0, played.stderr
    done = json.loads(played.stdout.strip().splitlines()[-1])
    assert done["taken"] >= 3 and done["resolved"] >= 1, done
    refused = _bpo(tmp_path, "demo", "simulate", "--minutes", "0")
    assert refused.returncode != 0 and "--minutes" in refused.stderr


def test_agent_remove_takes_an_agent_off_their_team_and_says_what_is_wrong_in_one_line(
    tmp_path: Path,
) -> None:
    from services.core.database import Database
    from tenants.principal import OrgKind, Role
    from tests.factories import make_agent, make_org, make_team, make_user

    assert _bpo(tmp_path, "db", "upgrade").returncode == 0
    database = Database(f"sqlite:///{tmp_path / 'bpo.sqlite'}")
    provider = make_org(database, OrgKind.PROVIDER, country="RO")
    team = make_team(database, provider)
    leaving = make_agent(database, provider, team, email="leaving@carpati.test")
    make_user(database, provider, [Role.AGENT], email="never-an-agent@carpati.test")
    database.engine.dispose()

    removed = _bpo(tmp_path, "agent", "remove", "--email", "Leaving@Carpati.test")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout.strip().splitlines()[-1]) == {"id": str(leaving.id), "tasks_returned": 0}
    for email in ("leaving@carpati.test", "never-an-agent@carpati.test"):
        refused = _bpo(tmp_path, "agent", "remove", "--email", email)
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [f"error: no agent {email}"]
