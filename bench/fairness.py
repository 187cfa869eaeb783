"""Fair share across portals: portal A floods (an import, as 100-event deliveries) while portal B sends
one event a second; ONE worker, handlers taking 20 ms an object.

Why: one portal's import must not queue ahead of another portal's single change. Figures: B's
enqueue-to-handler p95 while A's backlog drains (the receiver's own ack, a few ms, is measured by
bench/ack_latency.py; here deliveries go through the same intake call `hubhook web` makes) and A's
drain rate, with per-portal lanes off (HUBHOOK_FAIR_SLICE=0: one queue, oldest first, as before
lanes) and on (the default), and A's drain rate alone as the baseline, all in the same run.

    .venv/bin/python bench/fairness.py [--events 3000] [--handler-seconds 0.02]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench import harness
from bench.fair_handlers import A_DONE_KEY, A_LAST_KEY, B_LATENCY_KEY, PORTAL_B
from bench.results import emit, percentile
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import FakeHubSpot, make_event

PORTAL_A = 1001
PER_DELIVERY = 100


def flood(redis: Redis, config: Config, events: int, first_id: int) -> None:
    """A's import: ``events`` contact creations as 100-event deliveries, all accepted at once."""
    queue = build_queue(config, redis)
    now = int(time.time() * 1000)
    for start in range(0, events, PER_DELIVERY):
        batch = [make_event("contact.creation", first_id + i, portal_id=PORTAL_A, occurred_at=now)
                 for i in range(start, min(start + PER_DELIVERY, events))]
        enqueue_delivery(redis, queue, batch, fair=config.fair_slice > 0)


def trickle(redis: Redis, config: Config, stop: threading.Event, first_id: int) -> int:
    """B: one contact creation a second, stamped with its send time, until ``stop``; returns how many."""
    queue = build_queue(config, redis)
    sent = 0
    while not stop.wait(1.0 if sent else 0.5):
        event = make_event("contact.creation", first_id + sent, portal_id=PORTAL_B, occurred_at=int(time.time() * 1000))
        enqueue_delivery(redis, queue, [event], fair=config.fair_slice > 0)
        sent += 1
    return sent


def scenario(server_url: str, fake: FakeHubSpot, events: int, handler_seconds: float, fair_slice: float,
             with_b: bool, first_id: int) -> tuple[float, list[float], int]:
    """One run on a fresh database: A's drain rate (events/s), B's latencies (ms), B's events sent."""
    redis = Redis.from_url(server_url)
    redis.flushdb()
    config = Config(redis_url=server_url, fair_slice=fair_slice)
    env = harness.environment(server_url, HUBSPOT_API_BASE_URL=fake.url, HUBHOOK_HANDLERS="bench.fair_handlers:router",
                              HUBHOOK_FAIR_SLICE=str(fair_slice), BENCH_HANDLER_SECONDS=str(handler_seconds))
    with harness.hubhook_workers(1, env):
        harness.wait_until(lambda: redis.scard("rq:workers:hubhook") >= 1, 60, "the worker to start")
        started = time.time()
        flood(redis, config, events, first_id)
        stop = threading.Event()
        sent = [0]
        sender = threading.Thread(target=lambda: sent.__setitem__(0, trickle(redis, config, stop, 900_000_000)))
        if with_b:
            sender.start()
        limit = events * handler_seconds * 3 + 120
        harness.wait_until(lambda: int(redis.get(A_DONE_KEY) or 0) >= events, limit, "A's flood to drain")
        stop.set()
        if with_b:
            sender.join()
            harness.wait_until(lambda: redis.llen(B_LATENCY_KEY) >= sent[0], 60, "B's last events")
        rate = events / (float(redis.get(A_LAST_KEY)) - started)
        latencies = [float(v) for v in redis.lrange(B_LATENCY_KEY, 0, -1)]
    return rate, latencies, sent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="A's flood (the issue's figure: 50000)")
    parser.add_argument("--handler-seconds", type=float, default=0.02)
    parser.add_argument("--slice", type=float, default=Config.fair_slice, help="HUBHOOK_FAIR_SLICE when on")
    parser.add_argument("--skip-before", action="store_true", help="skip the run without lanes (B then waits for "
                        "the whole flood: as long as A's drain takes)")
    args = parser.parse_args()
    with FakeHubSpot(tokens={harness.TOKEN}) as fake, harness.redis_server(appendonly=False) as server:
        for i in range(1, args.events + 1):
            fake.add("contacts", i)
        for i in range(900_000_000, 900_000_000 + int(args.events * args.handler_seconds * 3) + 200):
            fake.add("contacts", i)
        alone, _, _ = scenario(server.url, fake, args.events, args.handler_seconds, args.slice, False, 1)
        before_rate, before, sent_before = (scenario(server.url, fake, args.events, args.handler_seconds, 0, True, 1)
                                            if not args.skip_before else (float("nan"), [], 0))
        after_rate, after, sent_after = scenario(server.url, fake, args.events, args.handler_seconds, args.slice,
                                                 True, 1)
    print(f"\nA floods {args.events:,} events (100-event deliveries), B sends 1 event/s; 1 worker, "
          f"handlers {args.handler_seconds * 1000:.0f} ms an object")
    for name, rate, values, sent in (("lanes off (before)", before_rate, before, sent_before),
                                     (f"lanes on, slice {args.slice:g} s", after_rate, after, sent_after)):
        p50, p95 = (percentile(values, p) for p in (50, 95)) if values else (float("nan"),) * 2
        print(f"  {name:<22} B p50 {p50:7.0f} ms  p95 {p95:7.0f} ms  ({len(values)}/{sent} B events)  "
              f"A drains {rate:6.1f} events/s = {rate / alone:.2f}x A alone")
    print(f"  A alone: {alone:.1f} events/s")
    p95_before = percentile(before, 95) if before else float("nan")
    p95_after = percentile(after, 95)
    emit(f"Fair share, {args.events:,}-event flood of portal A, 1 worker: portal B's p95 (1 event/s)",
         f"{p95_after:.0f} ms with lanes", baseline=f"{p95_before:.0f} ms without lanes (one queue)")
    emit(f"Fair share, {args.events:,}-event flood of portal A, 1 worker: A's drain rate while B sends",
         f"{after_rate:.1f} events/s = {after_rate / alone:.2f}x A alone",
         baseline=f"A alone {alone:.1f} events/s; without lanes {before_rate:.1f} events/s")


if __name__ == "__main__":
    main()
