"""What HUBHOOK_REDIS_MIN_REPLICAS=1 costs the receiver: ack latency and throughput with and without WAIT.

What runs: a Redis master with one replica and three sentinels (``webhook_service.testing.redis_topologies``)
on loopback, and ``hubhook web`` (2 gevent workers) reaching the master through the sentinels
(``REDIS_URL=redis+sentinel://...``). Ten senders (HubSpot keeps at most 10 requests in flight) post
signed 10-event deliveries for ``--seconds`` each round, first without waiting for the replica, then
with ``HUBHOOK_REDIS_MIN_REPLICAS=1`` (the receiver runs ``WAIT 1 1000`` before each 2xx). The figures
are the WAIT round's p50 and p99 ack latency and its deliveries per second, each against the round
without WAIT in the same run. No worker runs: only the receiver's side is measured.

    .venv/bin/python bench/replication_wait.py [--seconds 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.harness import SECRET, SIGNED_URL, hubhook_web
from bench.results import emit
from webhook_service.testing import make_event, signed_delivery
from webhook_service.testing.redis_topologies import SentinelGroup

SENDERS, EVENTS_PER_DELIVERY = 10, 10


def load(url: str, seconds: float) -> tuple[list[float], int]:
    """Ack latencies (s) of every 2xx, and the count of other answers, from ten senders for ``seconds``."""
    latencies: list[float] = []
    refused = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def send(sender: int) -> None:
        session, n = requests.Session(), 0
        while time.monotonic() < stop_at:
            n += 1
            events = [make_event("contact.propertyChange", sender * 10_000_000 + n * 100 + i, property="email",
                                 value="x") for i in range(EVENTS_PER_DELIVERY)]
            body, headers = signed_delivery(events, SECRET, SIGNED_URL)
            started = time.perf_counter()
            response = session.post(url, data=body, headers=headers, timeout=10)
            took = time.perf_counter() - started
            with lock:
                if response.status_code == 200:
                    latencies.append(took)
                else:
                    refused[0] += 1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, refused[0]


def summary(latencies: list[float], seconds: float) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, deliveries/s)."""
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000, len(latencies) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    seconds = parser.parse_args().seconds
    rounds = {}
    with SentinelGroup() as group:
        for replicas in (0, 1):
            with hubhook_web(group.url, HUBHOOK_REDIS_MIN_REPLICAS=str(replicas), HUBHOOK_LOG_LEVEL="WARNING") as web:
                load(web.url, 1.0)  # warm-up: connections, imports, the script cache
                latencies, refused = load(web.url, seconds)
            if refused:
                raise SystemExit(f"FAILED: {refused} deliveries refused with min replicas {replicas}")
            rounds[replicas] = summary(latencies, seconds)
            group.current_master().client().flushall()
    (p50, p99, rate), (w50, w99, wrate) = rounds[0], rounds[1]
    print(f"no WAIT: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rate:.0f} deliveries/s; "
          f"WAIT 1: p50 {w50:.1f} ms, p99 {w99:.1f} ms, {wrate:.0f} deliveries/s")
    emit("ack p50 with HUBHOOK_REDIS_MIN_REPLICAS=1 (Redis WAIT, one replica on loopback)",
         f"{w50:.1f} ms ({w50 / p50:.2f}x)", baseline=f"{p50:.1f} ms without WAIT")
    emit("ack p99 with HUBHOOK_REDIS_MIN_REPLICAS=1", f"{w99:.1f} ms ({w99 / p99:.2f}x)",
         baseline=f"{p99:.1f} ms without WAIT")
    emit("deliveries/s with HUBHOOK_REDIS_MIN_REPLICAS=1 (10 in flight, 10 events each)",
         f"{wrate:.0f} ({wrate / rate:.2f}x)", baseline=f"{rate:.0f} without WAIT")


if __name__ == "__main__":
    main()
