"""Ack latency at HubSpot's concurrency (10 deliveries in flight) while workers drain a backlog.

Why: HubSpot counts an answer slower than 5 s as a failure and retries it, and it keeps at most 10
requests in flight per account. The receiver shares the machine with the workers, so the figure
that matters is the tail (p99.9) while workers burn every core they can get. Setup: `hubhook web`
(2 x 8 gthread), a backlog of 100-event deliveries already in Redis, two `hubhook worker`
processes draining it against the fake HubSpot (no latency, no rate limit, so they are CPU-bound),
and wrk sending pre-signed 100-event deliveries on 10 connections. Back-pressure
(HUBHOOK_MAX_QUEUE_DEPTH) is off, so every delivery is accepted and the backlog keeps growing. The
baseline is the same wrk run just before the workers start (same backlog, idle workers), in the same run.

    .venv/bin/python bench/ack_latency.py [--seconds 20] [--backlog 1000]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench import harness, loadgen
from bench.results import emit
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.receiver.schemas import parse_events
from webhook_service.testing import FakeHubSpot

IN_FLIGHT = 10
OBJECTS = 1000
MAX_RATE = 500  # deliveries signed per second of run: more than 2 shared cores accept at c=10


def fill_backlog(redis_url: str, deliveries: int) -> None:
    """Enqueue ``deliveries`` 100-event deliveries the way the receiver does (dedupe keys included)."""
    config = Config(redis_url=redis_url, client_secrets=(harness.SECRET,))
    redis = Redis.from_url(redis_url)
    queue = build_queue(config, redis)
    object_ids = itertools.cycle(range(1, OBJECTS + 1))
    for _ in range(deliveries):
        enqueue_delivery(redis, queue, parse_events(loadgen.delivery(100, object_ids, int(time.time() * 1000))))


def run(url: str, requests_file: Path, seconds: float) -> loadgen.WrkResult:
    result = loadgen.run_wrk(url, requests_file, connections=IN_FLIGHT, seconds=seconds)
    requests_file.unlink()
    return result


def show(label: str, r: loadgen.WrkResult) -> None:
    print(f"  {label:34} {r.rate:6.0f} req/s  p50 {r.p50:6.1f}  p99 {r.p99:6.1f}  p99.9 {r.p999:6.1f}  "
          f"max {r.max:6.1f} ms  non-2xx {r.non_2xx}  errors {r.socket_errors + r.timeouts}  repeats {r.repeats}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=1000, help="100-event deliveries queued before the run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not loadgen.have_wrk():
        print("wrk is not installed (Debian: apt-get install -y wrk): ack latency bench skipped")
        emit("Ack latency p99.9, 10 in flight, workers draining", "not measured: wrk missing")
        return
    with tempfile.TemporaryDirectory(prefix="hubhook-bench-") as tmp, \
            FakeHubSpot(tokens={harness.TOKEN}, search_limit_per_second=None) as fake, \
            harness.redis_server(appendonly=True) as server, \
            harness.hubhook_web(server.url, HUBHOOK_MAX_QUEUE_DEPTH="0") as web:
        url = web.url
        for object_id in range(1, OBJECTS + 1):
            fake.add("contacts", object_id, {"email": f"c{object_id}@example.com", "lifecyclestage": "lead"})
        redis = Redis.from_url(server.url)
        fill_backlog(server.url, args.backlog)
        files = [loadgen.write_requests(Path(tmp) / f"run-{i}.txt", int(MAX_RATE * args.seconds), 100,
                                        secret=harness.SECRET, signed_url=harness.SIGNED_URL, objects=OBJECTS)
                 for i in range(2)]
        print(f"backlog: {redis.llen('rq:queue:hubhook'):,} deliveries of 100 events; wrk -t1 -c{IN_FLIGHT} "
              f"-d{args.seconds:.0f}s, 100-event deliveries; {args.workers} workers; shared cores")
        idle = run(url, files[0], args.seconds)
        show("workers idle (baseline)", idle)
        env = harness.environment(server.url, HUBSPOT_API_BASE_URL=fake.url, HUBSPOT_BURST_LIMIT="1000000")
        with harness.hubhook_workers(args.workers, env) as workers:
            harness.wait_until(lambda: fake.count() > 0, 30, "the workers to start draining")
            calls, cpu, started = fake.count(), harness.cpu_seconds([w.pid for w in workers]), time.monotonic()
            loaded = run(url, files[1], args.seconds)
            drained = fake.count() - calls
            busy = (harness.cpu_seconds([w.pid for w in workers]) - cpu) / (time.monotonic() - started)
            left = redis.llen("rq:queue:hubhook")
        show("workers draining the backlog", loaded)
        print(f"  workers: {drained:,} batch reads (~{drained:,} deliveries) during the run, {busy:.2f} cores busy; "
              f"{left:,} deliveries still queued at the end")
    errors = loaded.non_2xx + loaded.socket_errors + loaded.timeouts
    caveats = ([f"{errors} non-2xx or errors"] if errors else []) + ([] if left else ["the backlog ran dry"])
    print(f"  => p99.9 {loaded.p999:.1f} ms while draining, {loaded.p999 / idle.p999:.2f}x idle; "
          f"{5000 / loaded.p999:.0f}x under HubSpot's 5 s deadline")
    emit("Ack latency p99.9, 10 in flight, workers draining a backlog",
         f"{loaded.p999:.1f} ms (p99 {loaded.p99:.1f} ms, {loaded.rate:.0f} req/s)"
         + "".join(f"; {c}" for c in caveats),
         baseline=f"idle workers p99.9 {idle.p999:.1f} ms")


if __name__ == "__main__":
    main()
