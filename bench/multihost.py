"""Handler work of 50 ms an object on hosts B and C together against host B alone: the drain-rate ratio.

What runs: three hosts as Linux network namespaces on a private bridge (``webhook_service.testing.netns``;
needs root): Redis and ``hubhook web`` on A, one ``hubhook worker`` on B, then on B and C. Each round
first delivers N events to A's receiver while no worker runs, then starts the round's workers at once
and times the handlers (``tests/multihost_handlers.py``: 50 ms of sleep per object, stamped in a
ledger) from the first object handled to the last. Coalescing is capped at 10 events a job
(``HUBHOOK_COALESCE_MAX_EVENTS``) so a backlog splits into jobs both hosts can take. The figure is the
rate of B+C over the rate of B alone, measured in the same run (the issue asks for >= 1.8).

    .venv/bin/python bench/multihost.py [--events 200]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis

from bench.harness import SECRET, TOKEN
from bench.results import emit
from tests.multihost_handlers import Ledger
from tests.resilience.sender import Sender, contact_events, split
from webhook_service.testing import FakeHubSpot
from webhook_service.testing.netns import Deployment, Network, unavailable

SLEEP = 0.05


def drain_rate(deployment: Deployment, ledger: Ledger, letters: str, first_id: int, events: int) -> float:
    """Objects handled per second by one worker on each of ``letters`` over a backlog of ``events``."""
    ledger.redis.flushdb()
    deliveries = split(contact_events(events, first_id=first_id), random.Random(15), low=2, high=2)
    Sender(deployment.url, SECRET).send(deliveries)
    workers = [deployment.worker(letter) for letter in letters]
    deadline = time.monotonic() + 120
    while ledger.handled() < events:
        if time.monotonic() > deadline:
            raise SystemExit(f"FAILED: {ledger.handled()}/{events} handled after 120 s on {letters}")
        time.sleep(0.1)
    for worker in workers:
        worker.terminate()
        worker.wait(timeout=20)
    times = sorted(ledger.done_times())
    return (len(times) - 1) / (times[-1] - times[0] + SLEEP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200)
    events = parser.parse_args().events
    why_not = unavailable()
    if why_not:
        print(f"multihost bench skipped: {why_not}")
        return
    with Network("abc") as network, tempfile.TemporaryDirectory(prefix="hubhook-multihost-") as logs, \
            FakeHubSpot(host=network.gateway, tokens={TOKEN}) as hubspot:
        for object_id in range(1, 2 * events + 1):
            hubspot.add("contacts", object_id, {"email": f"c{object_id}@example.com"})
        deployment = Deployment(network, Path(logs), api_base_url=hubspot.url, secret=SECRET, token=TOKEN,
                                handlers="tests.multihost_handlers:router",
                                extra={"PYTHONPATH": str(ROOT), "HUBHOOK_COALESCE_MAX_EVENTS": "10",
                                       "MH_HANDLER_SLEEP": str(SLEEP)})
        ledger = Ledger(Redis.from_url(deployment.ledger_url))
        alone = drain_rate(deployment, ledger, "b", 1, events)
        both = drain_rate(deployment, ledger, "bc", events + 1, events)
        network.close()
    print(f"{events} events, {SLEEP * 1000:.0f} ms of handler work each: B alone {alone:.1f}/s, "
          f"B+C {both:.1f}/s")
    emit("drain rate, workers on hosts B+C over B alone (50 ms handler work an object)", f"{both / alone:.2f}x",
         baseline=f"B alone {alone:.1f} objects/s; B+C {both:.1f} objects/s")


if __name__ == "__main__":
    main()
