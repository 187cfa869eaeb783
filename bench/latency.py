"""Webhook-to-handler latency at 50 events/s, through `hubhook web`, `hubhook worker` and a fake HubSpot.

Why: below the API limit, a user's handler should see a CRM change within a second of HubSpot
sending it. The sender stamps each event's ``occurredAt`` with its send time and posts signed
deliveries on a fixed schedule; the handler (bench/handlers.py ``stamp``) records now - occurredAt.
The fake HubSpot behaves like a public app's account: 120 ms per call and 110 calls per rolling
10 s enforced, with hubhook's default budget of 100 calls per 10 s. At 50 events/s HubSpot batches
events into deliveries; the default is 10 events a delivery, 5 a second (one batch read each, half
the budget). The baseline is the floor measured in the same run: single deliveries sent one at a
time to idle workers (ack, dequeue, one 120 ms batch read, handler).

    .venv/bin/python bench/latency.py [--seconds 20] [--events-per-delivery 10]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from redis import Redis

from bench import harness
from bench.handlers import LATENCY_KEY
from bench.results import emit, percentile
from webhook_service.testing import FakeHubSpot, make_event, signed_delivery

RATE = 50  # events per second
DEALS = 5000


def send(session: requests.Session, url: str, object_ids, count: int) -> None:
    """One signed delivery of ``count`` deal.creation events stamped with the send time."""
    now = int(time.time() * 1000)
    events = [make_event("deal.creation", next(object_ids), occurred_at=now) for _ in range(count)]
    body, headers = signed_delivery(events, harness.SECRET, harness.SIGNED_URL)
    response = session.post(url, data=body, headers=headers, timeout=10)
    if response.status_code != 200:
        raise RuntimeError(f"delivery refused: {response.status_code} {response.text}")


def latencies(redis: Redis, expected: int, timeout: float) -> list[float]:
    """The handler's records once ``expected`` events arrived, or what arrived within ``timeout``."""
    try:
        harness.wait_until(lambda: redis.llen(LATENCY_KEY) >= expected, timeout, f"{expected} handled events")
    except TimeoutError:
        pass
    values = [float(v) for v in redis.lrange(LATENCY_KEY, 0, -1)]
    redis.delete(LATENCY_KEY)
    return values


def floor(session: requests.Session, url: str, redis: Redis, object_ids, samples: int = 8) -> float:
    """Median latency of a lone 1-event delivery: what one event costs with nothing else going on."""
    values = []
    for _ in range(samples):
        send(session, url, object_ids, 1)
        values += latencies(redis, 1, 10)
        time.sleep(0.2)
    return percentile(values, 50)


def stream(session: requests.Session, url: str, object_ids, seconds: float, per_delivery: int) -> tuple[int, float]:
    """Send RATE events/s for ``seconds`` on a fixed schedule; return events sent and the achieved rate."""
    interval, deliveries = per_delivery / RATE, int(seconds * RATE / per_delivery)
    started = time.monotonic()
    for i in range(deliveries):
        delay = started + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(session, url, object_ids, per_delivery)
    return deliveries * per_delivery, deliveries * per_delivery / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--events-per-delivery", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with FakeHubSpot(tokens={harness.TOKEN}, latency=0.12, burst_limit=(110, 10.0)) as fake, \
            harness.redis_server(appendonly=True) as server, harness.hubhook_web(server.url) as web:
        url = web.url
        for deal in range(1, DEALS + 1):
            fake.add("deals", deal, {"dealname": f"deal {deal}"})
        redis = Redis.from_url(server.url)
        env = harness.environment(server.url, HUBSPOT_API_BASE_URL=fake.url)
        object_ids = itertools.cycle(range(1, DEALS + 1))
        with harness.hubhook_workers(args.workers, env), requests.Session() as session:
            base = floor(session, url, redis, object_ids)
            sent, achieved = stream(session, url, object_ids, args.seconds, args.events_per_delivery)
            values = latencies(redis, sent, 30)
            calls = fake.count()
    p50, p95, p99 = (percentile(values, p) for p in (50, 95, 99))
    lost = sent - len(values)
    print(f"\n{sent:,} events at {achieved:.1f} events/s in deliveries of {args.events_per_delivery}, "
          f"{args.workers} workers, fake HubSpot 120 ms/call, 110 calls/10 s; {calls} API calls in all")
    print(f"  webhook-to-handler: p50 {p50:.0f} ms  p95 {p95:.0f} ms  p99 {p99:.0f} ms  max {max(values):.0f} ms"
          f"  ({len(values):,} handled, {lost} not handled within 30 s)")
    print(f"  floor (lone 1-event delivery, idle workers): {base:.0f} ms -> p95 is {p95 / base:.1f}x the floor")
    emit(f"Webhook-to-handler latency p95 at {RATE} events/s ({args.events_per_delivery}-event deliveries)",
         f"{p95:.0f} ms (p50 {p50:.0f} ms)" + (f"; {lost} not handled within 30 s" if lost else ""),
         baseline=f"lone delivery {base:.0f} ms")


if __name__ == "__main__":
    main()
