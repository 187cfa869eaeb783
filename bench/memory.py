"""Redis memory per queued event: how big a backlog fits in Redis.

Why it matters: enrichment is ~100x slower than the receiver (about 350 against 47,000 events/s in
bench/quota.py and bench/receiver.py), so
a burst (a 100k-contact import) waits in Redis; at 200 bytes an event a 1M-event backlog needs
200 MB. Deliveries go through the receiver's real path (Flask app, signature, validation, dedupe,
one job per delivery) in-process, no HTTP, on a private redis-server; the figure is the growth of
INFO used_memory divided by events, with hubhook's 48 h dedupe digests (members of one Redis SET
per time bucket) and without them (the sets are deleted and memory is read again). The baseline is
the bare endpoint's single RQ job per delivery (bench/bare_app.py), with the same serializer, in the
same run.

    .venv/bin/python bench/memory.py [--events 100000]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench import bare_app, harness, loadgen
from bench.results import emit
from webhook_service.config import Config
from webhook_service.receiver.app import create_app
from webhook_service.receiver.signature import signed_headers


def post_all(client, deliveries: int, events: int) -> None:
    """Sign and post ``deliveries`` distinct deliveries through the app's real request path."""
    object_ids = itertools.cycle(range(1, 10_001))
    for _ in range(deliveries):
        body = loadgen.delivery(events, object_ids, int(time.time() * 1000))
        response = client.post("/webhooks/hubspot", data=body,
                               headers=signed_headers(harness.SECRET, body, harness.SIGNED_URL))
        if response.status_code != 200:
            raise RuntimeError(f"delivery refused: {response.status_code} {response.get_data(as_text=True)}")


def used(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


def measure(redis: Redis, client, deliveries: int, events: int) -> tuple[float, int]:
    """Bytes per event added by ``deliveries`` deliveries of ``events`` events; and the total bytes."""
    post_all(client, 1, events)  # connections and lazily built state exist before the first reading
    redis.flushall()
    before = used(redis)
    post_all(client, deliveries, events)
    grown = used(redis) - before
    return grown / (deliveries * events), before


def drop_dedupe_keys(redis: Redis) -> int:
    """Delete hubhook's seen-sets (one per time bucket); return how many digests they held."""
    keys = list(redis.scan_iter(match="hubhook:seen:*", count=5000))
    digests = sum(redis.scard(key) for key in keys)
    if keys:
        redis.delete(*keys)  # not UNLINK: a big set would be freed later, after memory is read again
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per measurement (100-event deliveries)")
    parser.add_argument("--single", type=int, default=3_000, help="1-event deliveries per measurement")
    args = parser.parse_args()
    with harness.redis_server(appendonly=False) as server:
        redis = Redis.from_url(server.url)
        config = Config(redis_url=server.url, client_secrets=(harness.SECRET,), webhook_url=harness.SIGNED_URL,
                        max_queue_depth=0)
        clients = {"hubhook": create_app(config).test_client(),
                   "bare": bare_app.create_app(harness.SECRET, harness.SIGNED_URL, server.url).test_client()}
        for events, deliveries in ((100, args.events // 100), (1, args.single)):
            total = deliveries * events
            bare, _ = measure(redis, clients["bare"], deliveries, events)
            with_keys, before = measure(redis, clients["hubhook"], deliveries, events)
            dropped = drop_dedupe_keys(redis)
            without_keys = (used(redis) - before) / total
            print(f"\n{deliveries:,} deliveries of {events} events ({total:,} events), INFO used_memory growth:")
            print(f"  hubhook, with dedupe sets ({dropped:,} digests): {with_keys:7.0f} B/event  "
                  f"-> 1M events: {with_keys * 1e6 / 2**20:,.0f} MiB")
            print(f"  hubhook, jobs only:                {without_keys:7.0f} B/event")
            print(f"  bare (one plain RQ job/delivery):  {bare:7.0f} B/event")
            emit(f"Redis memory per queued event, {events}-event deliveries, with dedupe keys", f"{with_keys:.0f} B",
                 baseline=f"bare RQ job {bare:.0f} B")
            emit(f"Redis memory per queued event, {events}-event deliveries, without dedupe keys",
                 f"{without_keys:.0f} B", baseline=f"bare RQ job {bare:.0f} B")


if __name__ == "__main__":
    main()
