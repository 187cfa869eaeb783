"""Poller catch-up rate: records/s walked from 200,000 modified tickets at HubSpot's 5 searches/s.

CRM search allows 5 requests per second per account and 200 records per page
(https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm), so
1,000 records/s is the ceiling any poller can reach; that ceiling is the baseline here, and the
figure is the share of it reached. The walk crosses the 10,000-result cap twenty times on the way.

What runs: a private redis-server, the fake HubSpot over HTTP in this process with its search
limited to 5/s (a 6th request within a second gets HubSpot's 429), and `hubhook poll --once` as
users run it, in its own process, with the default search budget (HUBSPOT_SEARCH_LIMIT=5). The
cursor is set just before 200,000 tickets are modified (two per millisecond); the figure is
200,000 / the wall time of the `hubhook poll --once` process, startup included, and every record
must be in the queue exactly once afterwards.

    .venv/bin/python bench/poller.py [--records 200000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench.harness import BIN, TOKEN, environment, redis_server
from bench.results import emit
from jobs.poller.cursor import Cursor
from webhook_service import Router
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.testing import FakeHubSpot

#: `HUBHOOK_HANDLERS=bench.poller:router`: tickets arrive by polling only.
router = Router()
router.on("ticket.*", name="bench_tickets")(lambda event: None)
CEILING = 5 * 200  # records/s: 5 searches a second, 200 records a page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    records = parser.parse_args().records
    fake_hubspot = FakeHubSpot(tokens={TOKEN}, search_limit_per_second=5)
    with redis_server(appendonly=False) as server, fake_hubspot as fake:
        redis = Redis.from_url(server.url)
        start = time.time_ns() // 1_000_000
        Cursor(redis, 0, "ticket", "search").start(start)
        print(f"modifying {records:,} tickets in the fake HubSpot ...", flush=True)
        for i in range(records):
            fake.add("tickets", 1_000_000 + i, modified_at_ms=start + 1 + i // 2,
                     created_at_ms=start - 60_000)
        env = environment(server.url, HUBSPOT_API_BASE_URL=fake.url, HUBHOOK_HANDLERS="bench.poller:router",
                          HUBHOOK_ARCHIVE_SWEEP_INTERVAL="0", HUBSPOT_SEARCH_LIMIT="5",
                          HUBHOOK_LOG_LEVEL="WARNING")
        installed = BIN / "hubhook"
        hubhook = [str(installed)] if installed.exists() else [sys.executable, "-m", "webhook_service.cli"]
        print(f"running `hubhook poll --once` (>= {records / CEILING:.0f} s at the ceiling) ...", flush=True)
        began = time.monotonic()
        subprocess.run([*hubhook, "poll", "--once"], env=env, check=True)
        elapsed = time.monotonic() - began
        searches = [c for c in fake.calls if c.path.endswith("/search")]
        events = [e for job in build_queue(Config(redis_url=server.url), redis).jobs for e in job.args[0]]
    unique = len({e["objectId"] for e in events})
    if len(events) != records or unique != records:
        raise SystemExit(f"FAILED: {len(events):,} events enqueued for {unique:,} tickets, "
                         f"expected {records:,} once each")
    rate = records / elapsed
    throttled = sum(c.status == 429 for c in searches)
    print(f"caught up {records:,} records in {elapsed:.1f} s: {rate:,.0f} records/s "
          f"({rate / CEILING:.1%} of the {CEILING:,}/s ceiling); {len(searches)} searches, "
          f"{throttled} answered 429")
    emit("poller catch-up (records/s, 200k modified, search 5/s)", f"{rate:,.0f}/s",
         baseline=f"ceiling {CEILING:,}/s (5 searches/s x 200); ratio {rate / CEILING:.3f}")


if __name__ == "__main__":
    main()
