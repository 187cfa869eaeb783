"""The API calls a property= handler on a polled type adds: history reads per changed record.

What runs: a private redis-server, the fake HubSpot over HTTP in this process (its batch read with
``propertiesWithHistory`` takes at most 50 inputs, as HubSpot's), and one round of the real poller
(``hubhook poll --once``, in this process) over N tickets whose stage changed since the cursor, once
with a plain ``ticket.*`` handler (the baseline: search pages only) and once with a
``ticket.propertyChange`` handler watching ``hs_pipeline_stage``. The figure is the poller's HubSpot
calls per changed record in each run; the worker's fetch is the same in both and is not counted.
Every record must yield exactly one propertyChange event in the second run.

    .venv/bin/python bench/polled_history.py [--records 2000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench.harness import TOKEN, redis_server
from bench.results import emit
from jobs.poller import main as poller
from jobs.poller.cursor import Cursor
from webhook_service import Router
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.testing import FakeHubSpot


def one_round(records: int, router: Router) -> tuple[int, int, int]:
    """(searches, history reads, propertyChange events) of one poller round over ``records`` changes."""
    with redis_server(appendonly=False) as server, FakeHubSpot(tokens={TOKEN}, search_limit_per_second=None) as fake:
        redis = Redis.from_url(server.url)
        start = time.time_ns() // 1_000_000
        Cursor(redis, 0, "ticket", "search").start(start)
        for i in range(records):
            fake.add("tickets", 1_000_000 + i, {"hs_pipeline_stage": "1"}, modified_at_ms=start - 60_000)
            fake.update("tickets", 1_000_000 + i, {"hs_pipeline_stage": "2"}, modified_at_ms=start + 1 + i)
        config = Config(redis_url=server.url, access_token=TOKEN, api_base_url=fake.url, archive_sweep_interval=0,
                        search_limit=1000, burst_limit=100_000)
        fake.reset_calls()
        poller.run(config, once=True, router=router)
        searches = sum(c.path.endswith("/search") for c in fake.calls)
        reads = sum(bool(c.path.endswith("/batch/read") and c.body.get("propertiesWithHistory")) for c in fake.calls)
        events = [e for job in build_queue(config, redis).jobs for e in job.args[0] if e.get("propertyName")]
    return searches, reads, len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    records = parser.parse_args().records
    plain, watching = Router(), Router()
    plain.add(lambda event: None, "ticket.*", name="any_ticket")
    watching.add(lambda event: None, "ticket.propertyChange", name="stage", property="hs_pipeline_stage")
    base_searches, _, _ = one_round(records, plain)
    searches, reads, events = one_round(records, watching)
    if events != records:
        raise SystemExit(f"FAILED: {events:,} propertyChange events for {records:,} stage changes")
    base, total = base_searches / records, (searches + reads) / records
    print(f"{records:,} changed tickets: plain handler {base_searches} searches; property= handler "
          f"{searches} searches + {reads} history batch reads ({events:,} propertyChange events)")
    emit("poller calls per changed record, property= handler on a polled type", f"{total:.3f}",
         baseline=f"{base:.3f} with a plain handler (search pages only)")


if __name__ == "__main__":
    main()
