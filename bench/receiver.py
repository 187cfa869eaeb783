"""Receiver throughput and latency: `hubhook web` next to a bare Flask endpoint, same gunicorn, same run.

Why a bare endpoint: absolute req/s on a shared 2-core box swing by tens of percent from run to
run; the ratio to the least a correct endpoint must do (verify the v3 HMAC, parse, enqueue one RQ
job: bench/bare_app.py) under the same gunicorn settings, measured minutes apart, does not. Both
servers run at once against one redis-server (AOF everysec, as deployed); each run starts on a
flushed Redis, so every delivery in the pre-signed file is new to hubhook's dedupe. Runs alternate
(bare, hubhook, hubhook, bare, ...) so drift hits both, and the
ratio is the median over rounds of back-to-back pairs. Load: wrk, 1 thread, 16 connections
(closed loop), pre-signed deliveries of 100 and of 1 contact.propertyChange events. hubhook's
back-pressure (HUBHOOK_MAX_QUEUE_DEPTH, a 429 past 100k pending events) is off: the bare app has none,
and the question is how fast deliveries are accepted.

    .venv/bin/python bench/receiver.py [--seconds 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench import harness, loadgen
from bench.results import emit
from webhook_service import keys

CONNECTIONS = 16
#: Deliveries signed per body size: above what 2 shared cores can take in a run, so no repeats.
MAX_RATE = {100: 900, 1: 3000}
QUEUES = {"bare": "rq:queue:bare", "hubhook": "rq:queue:hubhook"}


def waiting_jobs(redis: Redis, name: str) -> int:
    """Jobs written in the run: RQ's queue, plus for hubhook the portals' lanes (``webhook_service.lanes``),
    where a delivery waits when no worker is free to take it next."""
    lanes = [redis.llen(keys.lane(p.decode())) for p in redis.lrange(keys.LANES, 0, -1)] if name == "hubhook" else []
    return redis.llen(QUEUES[name]) + sum(lanes)


@dataclass(frozen=True)
class Run:
    """One measured run: wrk's view, and the CPU the receiver and Redis spent per accepted delivery."""

    wrk: loadgen.WrkResult
    app_ms: float
    redis_ms: float


def measure(name: str, server: harness.Server, redis_server, redis: Redis, requests_file: Path,
            seconds: float) -> Run:
    """One warm-up second, a flush (the warm-up's deliveries must not count as duplicates), one run."""
    loadgen.run_wrk(server.url, requests_file, connections=CONNECTIONS, seconds=1)
    redis.flushall()
    app, db = server.pids(), [redis_server.process.pid]
    cpu_app, cpu_db = harness.cpu_seconds(app), harness.cpu_seconds(db)
    result = loadgen.run_wrk(server.url, requests_file, connections=CONNECTIONS, seconds=seconds)
    time.sleep(0.3)  # requests still in flight when wrk stopped
    jobs = waiting_jobs(redis, name)  # one job per accepted delivery, in flight ones included
    run = Run(result, (harness.cpu_seconds(app) - cpu_app) * 1000 / max(1, jobs),
              (harness.cpu_seconds(db) - cpu_db) * 1000 / max(1, jobs))
    print(f"  {name:8} {result.rate:6.0f} req/s  p50 {result.p50:6.1f} ms  p99 {result.p99:6.1f} ms  "
          f"CPU/delivery: app {run.app_ms:5.2f} ms, Redis {run.redis_ms:4.2f} ms  non-2xx {result.non_2xx}  "
          f"errors {result.socket_errors + result.timeouts}  jobs/request {jobs / max(1, result.requests):.2f}  "
          f"repeats {result.repeats}", flush=True)
    return run


def bench_size(events: int, servers: dict[str, harness.Server], redis_server, workdir: Path, seconds: float,
               rounds: int) -> dict[str, list[Run]]:
    requests_file = loadgen.write_requests(workdir / f"deliveries-{events}.txt", int(MAX_RATE[events] * seconds),
                                           events, secret=harness.SECRET, signed_url=harness.SIGNED_URL)
    print(f"\n{events}-event deliveries: wrk -t1 -c{CONNECTIONS} -d{seconds:.0f}s x {rounds} rounds each", flush=True)
    redis = Redis.from_url(redis_server.url)
    runs: dict[str, list[Run]] = {"bare": [], "hubhook": []}
    for i in range(rounds):
        for name in (("bare", "hubhook") if i % 2 == 0 else ("hubhook", "bare")):
            runs[name].append(measure(name, servers[name], redis_server, redis, requests_file, seconds))
    requests_file.unlink()
    return runs


def report(events: int, runs: dict[str, list[Run]]) -> None:
    """Medians over rounds; the ratio is the median of each round's hubhook/bare pair (run back to back)."""
    med = statistics.median
    rate = {name: med(r.wrk.rate for r in rs) for name, rs in runs.items()}
    p50 = {name: med(r.wrk.p50 for r in rs) for name, rs in runs.items()}
    p99 = {name: med(r.wrk.p99 for r in rs) for name, rs in runs.items()}
    cpu = {name: med(r.app_ms + r.redis_ms for r in rs) for name, rs in runs.items()}
    worst = max(r.wrk.p99 for r in runs["hubhook"])
    ratio = med(h.wrk.rate / b.wrk.rate for h, b in zip(runs["hubhook"], runs["bare"]))
    repeats = sum(r.wrk.repeats for rs in runs.values() for r in rs)
    bad = sum(r.wrk.non_2xx + r.wrk.socket_errors + r.wrk.timeouts for rs in runs.values() for r in rs)
    print(f"  => hubhook {rate['hubhook']:.0f} req/s ({rate['hubhook'] * events:,.0f} events/s), bare "
          f"{rate['bare']:.0f} req/s: ratio {ratio:.2f}; hubhook p50 {p50['hubhook']:.1f} ms, p99 "
          f"{p99['hubhook']:.1f} ms (worst round {worst:.1f} ms; bare p99 {p99['bare']:.1f} ms); "
          f"non-2xx or errors {bad}; repeats {repeats}")
    print(f"     CPU per delivery (app + Redis): hubhook {cpu['hubhook']:.2f} ms, bare {cpu['bare']:.2f} ms: "
          f"bare/hubhook {cpu['bare'] / cpu['hubhook']:.2f} (the throughput ratio a CPU-bound box allows)")
    emit(f"Receiver throughput, {events}-event deliveries (hubhook / bare)",
         f"{rate['hubhook']:.0f} req/s ({rate['hubhook'] * events:,.0f} events/s), ratio {ratio:.2f}",
         baseline=f"bare Flask {rate['bare']:.0f} req/s")
    emit(f"Receiver CPU per {events}-event delivery, app + Redis",
         f"{cpu['hubhook']:.2f} ms, bare/hubhook {cpu['bare'] / cpu['hubhook']:.2f}",
         baseline=f"bare {cpu['bare']:.2f} ms")
    emit(f"Receiver latency, {events}-event deliveries, 16 in flight",
         f"p99 {p99['hubhook']:.1f} ms (p50 {p50['hubhook']:.1f} ms)"
         + (f"; {bad} non-2xx or errors" if bad else ""),
         baseline=f"bare p99 {p99['bare']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1], choices=[100, 1])
    args = parser.parse_args()
    if not loadgen.have_wrk():
        print("wrk is not installed (Debian: apt-get install -y wrk): receiver bench skipped")
        emit("Receiver throughput and latency", "not measured: wrk missing")
        return
    print(f"gunicorn gevent, {harness.WEB_WORKERS} workers, for both apps; "
          f"Redis AOF everysec; everything shares the machine's cores (no pinning)")
    with tempfile.TemporaryDirectory(prefix="hubhook-bench-") as tmp, \
            harness.redis_server(appendonly=True) as server, \
            harness.hubhook_web(server.url, HUBHOOK_MAX_QUEUE_DEPTH="0") as hubhook, \
            harness.bare_web(server.url) as bare:
        for events in args.sizes:
            report(events, bench_size(events, {"bare": bare, "hubhook": hubhook}, server, Path(tmp),
                                      args.seconds, args.rounds))


if __name__ == "__main__":
    main()
