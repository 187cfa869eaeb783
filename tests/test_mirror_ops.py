"""Operating the mirror: PostgreSQL down mid-stream, ``hubhook replay``, ``hubhook mirror check|status|backfill``."""
from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from rq.registry import FailedJobRegistry

from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.devstack import PostgresProcess
from webhook_service.operator import dead_letters
from webhook_service.testing import FakeHubSpot, make_event

from .conftest import ROOT, TOKEN, drain
from .mirror_support import deliver, process, query, row


def _drifts(config, type_name=None):
    from jobs.mirror.check import check

    found = list(check(config, type_name))
    return [str(d) for d in found[:-1]], found[-1]


def _cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webhook_service.cli", "mirror", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def own_postgres():
    """A PostgreSQL of this test's own, which it may kill."""
    server = PostgresProcess().start()
    yield server
    server.remove()


@pytest.fixture
def roomy_hubspot():
    """A fake HubSpot announcing a large burst budget: each parked object is refetched alone, and this is
    not a rate-limit test."""
    with FakeHubSpot(tokens={TOKEN}, burst_limit=(10_000, 10.0)) as fake:
        yield fake


def test_postgres_down_mid_stream_parks_the_mirror_alone_and_replay_converges(config, redis, roomy_hubspot,
                                                                              own_postgres):
    from jobs.mirror.handler import close_all

    hubspot = roomy_hubspot
    mirror = dataclasses.replace(config, mirror_url=own_postgres.url, mirror_objects=("contacts", "companies"),
                                 api_base_url=hubspot.url, burst_limit=10_000)
    # Given 50 contacts mirrored while PostgreSQL is up, and a user's handler beside the mirror
    for i in range(1, 51):
        hubspot.add("contacts", i, {"email": f"c{i}@example.com", "firstname": "v0"})
    seen: list[str] = []
    router = Router()
    router.add(lambda e: seen.append(e.object_id), "contact.*", name="user_handler")
    try:
        process(mirror, redis, [make_event("contact.creation", i) for i in range(1, 51)], router)
        assert query(mirror, "SELECT count(*) AS n FROM {s}.contacts")[0]["n"] == 50
        # When PostgreSQL dies and 1,000 changes arrive (twenty per contact)
        own_postgres.kill()
        events = []
        for version in range(1, 21):
            for i in range(1, 51):
                hubspot.update("contacts", i, {"firstname": f"v{version}"})
                events.append(make_event("contact.propertyChange", i, property="firstname", value=f"v{version}"))
        seen.clear()
        for start in range(0, 1000, 100):
            deliver(mirror, redis, events[start:start + 100])
        drain(mirror, router)
        # Then the user's handler ran for every contact, and only the mirror's work is parked
        assert set(seen) == {str(i) for i in range(1, 51)}
        letters = dead_letters.dead_letters(mirror)
        assert letters and {d.handler for d in letters} == {"hubhook.mirror.contacts"}
        assert len(FailedJobRegistry(queue=build_queue(mirror, redis))) == len(letters)
        # When PostgreSQL is back and the operator runs `hubhook replay`
        own_postgres.start()
        lines = list(dead_letters.replay(mirror))
        assert sum(line.startswith("replayed") for line in lines) == len(letters), lines[-3:]
        drain(mirror, router)
        # Then the mirror converged: no drift against HubSpot, every contact at its last version
        drifts, checked = _drifts(mirror, "contacts")
        assert drifts == [] and checked == 50
        assert {r["firstname"] for r in query(mirror, "SELECT properties->>'firstname' AS firstname "
                                                      "FROM {s}.contacts")} == {"v20"}
    finally:
        close_all()


def test_check_finds_a_row_edited_behind_hubhooks_back(mirror_config, redis, hubspot, env):
    # Given three mirrored deals
    for i in (1, 2, 3):
        hubspot.add("deals", 700 + i, {"dealname": f"Deal {i}", "amount": 10 * i})
    process(mirror_config, redis, [make_event("deal.creation", 700 + i) for i in (1, 2, 3)])
    cli_env = {**env, "HUBHOOK_MIRROR_URL": mirror_config.mirror_url,
               "HUBHOOK_MIRROR_SCHEMA": mirror_config.mirror_schema}
    clean = _cli(cli_env, "check", "deals")
    assert clean.returncode == 0 and "checked 3 rows: 0 drifted" in clean.stdout
    # When someone edits one row in the database directly
    with psycopg.connect(mirror_config.mirror_url, autocommit=True) as conn:
        conn.execute(f'UPDATE "{mirror_config.mirror_schema}".deals SET properties = properties || '
                     """'{"amount": "999"}' WHERE object_id = 702""")
    # Then `hubhook mirror check` prints that row and exits 1
    drifted = _cli(cli_env, "check", "deals", "--sample", "3")
    assert drifted.returncode == 1, drifted.stderr
    assert "deals 62515/702: amount: mirror '999' != HubSpot '20'" in drifted.stdout
    assert "1 drifted" in drifted.stdout
    # And `hubhook mirror status` shows the rows, without the database password or URL
    status = _cli(cli_env, "status")
    assert status.returncode == 0 and "deals" in status.stdout and "3" in status.stdout


def test_status_never_shows_the_database_password(mirror_config, redis, env, postgres_server):
    # Given a mirror URL with a password in it (trust auth ignores it)
    url = postgres_server.url.replace("hubhook@", "hubhook:s3cret-pass-word@")
    cli_env = {**env, "HUBHOOK_MIRROR_URL": url, "HUBHOOK_MIRROR_SCHEMA": mirror_config.mirror_schema}
    # When status runs, before and after the tables exist, and when PostgreSQL cannot be reached
    outputs = [_cli(cli_env, "status")]
    cli_env_down = {**cli_env, "HUBHOOK_MIRROR_URL": "postgresql://u:s3cret-pass-word@127.0.0.1:1/x"}
    outputs.append(_cli(cli_env_down, "status"))
    # Then no output holds the password, and the unreachable case is one line saying what to check
    for done in outputs:
        assert "s3cret-pass-word" not in done.stdout + done.stderr
    assert outputs[1].returncode == 2 and "cannot connect to PostgreSQL at 127.0.0.1:1/x" in outputs[1].stderr
    assert "Traceback" not in outputs[1].stderr


def test_backfill_killed_halfway_resumes_and_finishes(mirror_config, redis, hubspot, env):
    # Given 600 contacts in HubSpot that the mirror has never seen, and a slow HubSpot
    for i in range(1, 601):
        hubspot.add("contacts", 10_000 + i, {"email": f"b{i}@example.com"})
    cli_env = {**env, "HUBHOOK_MIRROR_URL": mirror_config.mirror_url,
               "HUBHOOK_MIRROR_SCHEMA": mirror_config.mirror_schema, "HUBHOOK_MIRROR_OBJECTS": "contacts",
               "HUBSPOT_PORTAL_ID": "62515"}
    hubspot.latency = 0.15
    # When a backfill is killed once it has saved a cursor
    from webhook_service import keys
    cursor = keys.mirror_backfill_cursor(62515, "contacts")
    first = subprocess.Popen([sys.executable, "-m", "webhook_service.cli", "mirror", "backfill", "contacts"],
                             env=cli_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not redis.exists(cursor):
        assert first.poll() is None and time.monotonic() < deadline, "the backfill saved no cursor"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    saved = int(redis.get(cursor))
    halfway = query(mirror_config, "SELECT count(*) AS n FROM {s}.contacts")[0]["n"]
    assert 0 < halfway < 600
    # Then a second run resumes at the cursor and finishes
    hubspot.latency = 0.0
    hubspot.reset_calls()
    second = _cli(cli_env, "backfill", "contacts")
    assert second.returncode == 0, second.stderr
    assert "contacts: " in second.stdout
    lists = [c for c in hubspot.calls if c.method == "GET" and c.path.endswith("/contacts")]
    assert int(lists[0].query["after"]) == saved
    assert query(mirror_config, "SELECT count(*) AS n FROM {s}.contacts")[0]["n"] == 600
    assert not redis.exists(cursor)
    assert row(mirror_config, "contacts", 10_600)["properties"]["email"] == "b600@example.com"
