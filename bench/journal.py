"""Webhooks Journal: catch-up rate into the queue, and HubSpot CRM calls per event in reconcile mode.

1. Catch-up: 100,000 journal events (100 files of 1,000 property changes) wait in the fake's journal;
   `hubhook journal --once` runs as users run it, in its own process (startup included), until the
   journal answers "nothing new". The figure is events/s into the queue; every event must be in the queue
   exactly once afterwards. Baseline, same run, same Redis: the same 100,000 events enqueued by this
   process straight through intake (`enqueue_delivery`, 500 a job, change identities on), i.e. the cost
   of the queue alone without downloading and mapping the journal. Target: at least 5,000 events/s.
2. Reconcile mode: the fake sends push webhooks of 1,000 deal changes to hubhook's receiver, a worker
   handles them, then the journal reader reads the same 1,000 changes from the journal and a worker
   runs again. The figure is the HubSpot CRM calls per journal event made by the reader and by the
   work it enqueued (target: none, as every change was already seen by webhook); the baseline is the
   CRM calls per event the webhook path itself made.

    .venv/bin/python bench/journal.py [--events 100000]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis
from werkzeug.serving import WSGIRequestHandler, make_server

from bench.harness import BIN, SECRET, TOKEN, environment, redis_server
from bench.results import emit
from jobs.journal import reader
from jobs.worker.worker import build_worker
from webhook_service import Router
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.devstack import free_port
from webhook_service.receiver.app import create_app
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import FakeHubSpot

CLIENT_ID = "bench-journal-app"
FILE_EVENTS = 1_000
TARGET = 5_000


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:   # a thousand deliveries: no access log
        pass


router = Router()
router.on("deal.propertyChange", name="bench_deals")(lambda event: None)


def journal_events(count: int, start_ms: int) -> list[list[dict]]:
    """``count`` UPDATE events in files of FILE_EVENTS, as the community clients saw them."""
    files = []
    for first in range(0, count, FILE_EVENTS):
        files.append([{"type": "crmObject", "portalId": 62515, "occurredAt": str(start_ms + i), "action": "UPDATE",
                       "objectTypeId": "0-3", "objectId": 1_000_000 + i, "propertyChanges": {"amount": str(i)}}
                      for i in range(first, min(first + FILE_EVENTS, count))])
    return files


def queued(redis: Redis, config: Config) -> list[dict]:
    return [e for job in build_queue(config, redis).get_jobs() for e in job.args[0]]


def catch_up(events: int) -> None:
    with redis_server(appendonly=False) as server, FakeHubSpot(tokens={TOKEN}) as fake:
        redis = Redis.from_url(server.url)
        config = Config(redis_url=server.url, max_queue_depth=0)
        files = journal_events(events, int(time.time() * 1000))
        # the baseline: the same events straight through intake, as the reader enqueues them
        began = time.monotonic()
        for batch in files:
            for start in range(0, len(batch), reader.CHUNK):
                enqueue_delivery(redis, build_queue(config, redis), _mapped(batch[start:start + reader.CHUNK]),
                                 source="journal", max_pending=0, identities=True)
        baseline = events / (time.monotonic() - began)
        redis.flushall()
        for batch in files:
            fake.journal.append(batch)
        env = environment(server.url, HUBSPOT_API_BASE_URL=fake.url, HUBSPOT_CLIENT_ID=CLIENT_ID,
                          HUBHOOK_JOURNAL_MODE="intake", HUBHOOK_MAX_QUEUE_DEPTH="0", HUBHOOK_LOG_LEVEL="WARNING")
        installed = BIN / "hubhook"
        hubhook = [str(installed)] if installed.exists() else [sys.executable, "-m", "webhook_service.cli"]
        print(f"running `hubhook journal --once` over {events:,} events in {len(files)} files ...", flush=True)
        began = time.monotonic()
        subprocess.run([*hubhook, "journal", "--once"], env=env, check=True)
        elapsed = time.monotonic() - began
        found = queued(redis, config)
    unique = len({e["objectId"] for e in found})
    if len(found) != events or unique != events:
        raise SystemExit(f"FAILED: {len(found):,} events enqueued for {unique:,} changes, "
                         f"expected {events:,} once each")
    rate = events / elapsed
    print(f"caught up {events:,} journal events in {elapsed:.1f} s: {rate:,.0f} events/s "
          f"(intake alone: {baseline:,.0f}/s; target >= {TARGET:,}/s)")
    emit(f"journal catch-up into the queue (events/s, {events // 1000}k events, process startup included)",
         f"{rate:,.0f}/s",
         baseline=f"intake alone {baseline:,.0f}/s; ratio {rate / baseline:.2f}; target >= {TARGET:,}/s")


def _mapped(raw: list[dict]) -> list[dict]:
    from jobs.journal import format
    return format.map_file(raw).events


def reconcile_calls(changes: int = 1_000) -> None:
    with redis_server(appendonly=False) as server, FakeHubSpot(tokens={TOKEN}) as fake:
        redis = Redis.from_url(server.url)
        port = free_port()
        url = f"http://127.0.0.1:{port}/webhooks/hubspot"
        config = Config(redis_url=server.url, client_secrets=(SECRET,), access_token=TOKEN, api_base_url=fake.url,
                        webhook_url=url, client_id=CLIENT_ID, journal_mode="reconcile", journal_poll_interval=0.05,
                        journal_reconcile_delay=0.0)
        http = make_server("127.0.0.1", port, create_app(config), threaded=True, request_handler=_Quiet)
        threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        try:
            deals = 100
            for i in range(deals):   # before webhooks and the journal: no events
                fake.add("deals", 5_000 + i, {"dealname": f"deal {i}"})
            fake.serve_journal()
            emitter = fake.emit_webhooks_to(url, SECRET, retry_delays=())
            for i in range(changes):
                fake.update("deals", 5_000 + i % deals, {"amount": str(i)})
            if not emitter.wait_idle(120):
                raise SystemExit("FAILED: webhooks still in flight after 120 s")
            webhook_events = len(emitter.events)
            fake.reset_calls()
            build_worker(config, router).work(burst=True, with_scheduler=False, logging_level="WARNING")
            webhook_calls = fake.count(path_contains="/crm/")
            fake.reset_calls()
            reader.run(dataclasses.replace(config, poll_lock_ttl=5.0), once=True)
            build_worker(config, router).work(burst=True, with_scheduler=False, logging_level="WARNING")
            journal_calls = fake.count(path_contains="/crm/")
            journal_events = sum(len(f.events) for f in fake.journal.files)
            row = reader.status(config, redis) or {}
        finally:
            http.shutdown()
            http.server_close()
    if journal_events != changes or row.get("duplicates") != changes:
        raise SystemExit(f"FAILED: {journal_events} journal events, {row.get('duplicates')} dropped as seen; "
                         f"expected {changes} of each: {json.dumps(row)}")
    print(f"reconcile: {changes:,} changes by webhook ({webhook_events} events, {webhook_calls} CRM calls), "
          f"then by journal: {row.get('duplicates')} dropped as already seen, {journal_calls} CRM calls")
    emit("journal reconcile: HubSpot CRM calls per journal event already seen by webhook",
         f"{journal_calls / changes:.3f} ({journal_calls} calls / {changes:,} events)",
         baseline=f"webhook path: {webhook_calls / webhook_events:.3f} calls/event; target 0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    events = parser.parse_args().events
    catch_up(events)
    reconcile_calls()


if __name__ == "__main__":
    main()
