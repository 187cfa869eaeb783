"""HubSpot API calls per event for one 100-event delivery.

50 contact creations and 50 deal stage changes, in two scenarios: (a) the handlers declare 2
association types in all (contact handler `companies`, deal handler `contacts` and `companies`);
(b) each handler declares 2 (contact handler `companies` and `deals`), the reading under which
naive fetching costs 3.0 calls per event. The delivery goes through the real
pipeline (real Redis, a real RQ worker, the fake HubSpot over HTTP), and the calls the fake receives
are counted. The baseline is what naive per-event fetching costs: one GET per record plus one
association GET per declared type.

    .venv/bin/python bench/api_calls.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench.results import emit
from jobs.worker.worker import build_worker
from webhook_service import Router
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.devstack import RedisProcess
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import FakeHubSpot, make_event


def run(redis_server: RedisProcess, contact_associations: list[str]) -> None:
    with FakeHubSpot(tokens={"t"}) as fake:
        for i in range(1, 51):
            fake.add("contacts", i, {"email": f"c{i}@example.com"})
            fake.add("deals", 1000 + i, {"dealname": f"d{i}", "dealstage": "won"})
            fake.add("companies", 5000 + i)
            fake.associate("contacts", i, "companies", 5000 + i)
            fake.associate("deals", 1000 + i, "contacts", i)
            fake.associate("deals", 1000 + i, "companies", 5000 + i)
        Redis.from_url(redis_server.url).flushall()
        calls = []
        router = Router()
        router.add(calls.append, "contact.creation", name="welcome", associations=contact_associations)
        router.add(calls.append, "deal.propertyChange", name="stage", property="dealstage",
                   properties=["dealname", "dealstage"], associations=["contacts", "companies"])
        config = Config(redis_url=redis_server.url, client_secrets=("s",), access_token="t", api_base_url=fake.url)
        events = [make_event("contact.creation", i) for i in range(1, 51)]
        events += [make_event("deal.propertyChange", 1000 + i, property="dealstage", value="won") for i in range(1, 51)]
        worker = build_worker(config, router)
        enqueue_delivery(worker.connection, build_queue(config, worker.connection), events)
        fake.reset_calls()
        worker.work(burst=True, logging_level="WARNING")
        per_event = fake.count() / len(events)
        floor = (2 + 2 + len(contact_associations)) / len(events)
        naive = (50 * (1 + len(contact_associations)) + 50 * (1 + 2)) / len(events)
        print(f"\ncontact handler associations={contact_associations}, deal handler associations=['contacts', "
              f"'companies']\nevents: {len(events)}  handler calls: {len(calls)}  HubSpot API calls: {fake.count()}")
        for call in fake.calls:
            print(f"  {call.method} {call.path}")
        print(f"API calls per event: {per_event:.3f}; the floor is one call per (object type, "
              f"endpoint): {floor:.3f}")
        print(f"naive per-event fetching: {naive:.3f} calls per event -> {naive / per_event:.0f}x fewer calls")
        emit(f"API calls per event, one 100-event delivery, contact handler associations {contact_associations}",
             f"{per_event:.3f}", baseline=f"naive per-event fetching {naive:.2f}")


def main() -> None:
    redis_server = RedisProcess(appendonly=False).start()
    try:
        run(redis_server, ["companies"])
        run(redis_server, ["companies", "deals"])
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
