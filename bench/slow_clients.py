"""Delivery latency of `hubhook web` while 200 clients trickle their request headers, one line every 2 s.

Why: a server that gives each connection a thread until its headers are complete can be stalled by a
handful of clients that never finish sending them (slowloris); HubSpot's deliveries then queue behind
them and time out. `hubhook web` runs gevent workers, where a connection waiting for bytes costs a
greenlet, not a thread, so deliveries keep their usual latency. This bench opens the slow connections
against a real `hubhook web` (2 workers, as the Procfile runs it) and times signed deliveries and
``/healthz`` one after another, each on a new connection, as HubSpot and a load balancer would.

    .venv/bin/python bench/slow_clients.py [--slow 200] [--deliveries 100]

``SlowHeaderClients`` and ``timed_requests`` are also what tests/resilience/test_slow_clients.py uses.
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webhook_service.testing import make_event, signed_delivery


class SlowHeaderClients:
    """``count`` connections that send a request line, then one more header line every ``interval`` s and
    never the blank line that ends the headers. ``round_done`` is set after each full round of lines, so a
    caller can wait until the server has read from every connection at least once."""

    def __init__(self, host: str, port: int, count: int = 200, interval: float = 2.0) -> None:
        self.address, self.count, self.interval = (host, port), count, interval
        self.sockets: list[socket.socket] = []
        self.closed_by_server = 0
        self.rounds = 0
        self.round_done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-header-clients", daemon=True)

    def __enter__(self) -> SlowHeaderClients:
        host = f"{self.address[0]}:{self.address[1]}"
        for _ in range(self.count):
            sock = socket.create_connection(self.address, timeout=5)
            sock.sendall(f"POST /webhooks/hubspot HTTP/1.1\r\nHost: {host}\r\n".encode())
            self.sockets.append(sock)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        line = 0
        while not self._stop.wait(self.interval):
            line += 1
            for sock in list(self.sockets):
                try:
                    sock.sendall(f"X-Slow-{line}: {line}\r\n".encode())
                except OSError:  # the server hung up on it: that connection no longer holds anything
                    self.sockets.remove(sock)
                    self.closed_by_server += 1
                    sock.close()
            self.rounds += 1
            self.round_done.set()

    def open(self) -> int:
        """How many slow connections the server still keeps open."""
        return len(self.sockets)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        for sock in self.sockets:
            sock.close()


def timed_requests(base: str, secret: str, signed_url: str, deliveries: int, *, first_id: int = 1,
                   timeout: float = 5.0, give_up_after: int = 3
                   ) -> tuple[list[float], list[float], list[str]]:
    """Send ``deliveries`` signed one-event deliveries and as many ``GET /healthz``, alternately, each on a
    fresh connection (``timeout``: HubSpot waits 5 s). Returns the deliveries' seconds, /healthz's seconds,
    and every answer that was not a 200 (or an exception name) as text; stops after ``give_up_after`` of
    those, so a stalled server costs seconds, not minutes."""
    delivery_s: list[float] = []
    health_s: list[float] = []
    problems: list[str] = []
    for i in range(deliveries):
        if len(problems) >= give_up_after:
            break
        event = make_event("contact.propertyChange", first_id + i, property="email", value=f"slow-{i}")
        body, headers = signed_delivery([event], secret, signed_url)
        for kind, call, into in (
                ("delivery", lambda: requests.post(base + "/webhooks/hubspot", data=body, headers=headers,  # noqa: B023
                                                   timeout=timeout), delivery_s),
                ("healthz", lambda: requests.get(base + "/healthz", timeout=timeout), health_s)):
            started = time.perf_counter()
            try:
                status = call().status_code
            except requests.RequestException as exc:
                status = None
                problems.append(f"{kind} {i}: {type(exc).__name__}")
            into.append(time.perf_counter() - started)
            if status is not None and status != 200:
                problems.append(f"{kind} {i}: HTTP {status}")
    return delivery_s, health_s, problems


def main() -> None:
    from bench import harness
    from bench.results import emit, percentile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=200, help="slow-header connections to hold open")
    parser.add_argument("--deliveries", type=int, default=100)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between header lines")
    args = parser.parse_args()
    with harness.redis_server(appendonly=True) as server, harness.hubhook_web(server.url) as web:
        base = web.url.removesuffix("/webhooks/hubspot")
        port = int(base.rsplit(":", 1)[1])
        quiet, _, _ = timed_requests(base, harness.SECRET, harness.SIGNED_URL, 20, first_id=1_000_000)
        with SlowHeaderClients("127.0.0.1", port, args.slow, args.interval) as slow:
            slow.round_done.wait(args.interval + 10)
            delivery_s, health_s, problems = timed_requests(base, harness.SECRET, harness.SIGNED_URL,
                                                            args.deliveries)
            still_open = slow.open()
    ms = {name: (percentile(v, 50) * 1000, max(v) * 1000) for name, v in
          (("quiet", quiet), ("delivery", delivery_s), ("healthz", health_s))}
    print(f"`hubhook web` ({harness.WEB_WORKERS} workers) with {args.slow} connections sending one header "
          f"line every {args.interval:g} s ({still_open} still open at the end):")
    print(f"  signed deliveries: p50 {ms['delivery'][0]:.1f} ms, max {ms['delivery'][1]:.1f} ms "
          f"over {len(delivery_s)} (without slow clients: p50 {ms['quiet'][0]:.1f} ms, "
          f"max {ms['quiet'][1]:.1f} ms)")
    print(f"  /healthz:          p50 {ms['healthz'][0]:.1f} ms, max {ms['healthz'][1]:.1f} ms; "
          f"not answered 200: {len(problems)}" + (f" ({'; '.join(problems[:5])})" if problems else ""))
    emit(f"Delivery latency under {args.slow} slow-header clients",
         f"p50 {ms['delivery'][0]:.1f} ms, max {ms['delivery'][1]:.1f} ms; /healthz max "
         f"{ms['healthz'][1]:.1f} ms" + (f"; {len(problems)} not answered 200" if problems else ""),
         baseline=f"no slow clients: p50 {ms['quiet'][0]:.1f} ms")


if __name__ == "__main__":
    main()
