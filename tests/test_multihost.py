"""hubhook on three hosts: Redis and the receiver on A, workers and pollers on B and C; then B dies.

The hosts are Linux network namespaces on a private bridge (``webhook_service.testing.netns``), each with
its own address, so every byte between them crosses a network interface and "B dies" is every process
of B SIGKILLed at once. The fake HubSpot is served from the root namespace on the bridge, reachable from
B and C. Skipped, with the reason, where namespaces cannot be made (not root, no iproute2).

How much faster B+C drain than B alone is a timing, so it is measured by ``bench/multihost.py``, not
asserted here: this test asserts what must hold on any machine.
"""
from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from webhook_service import keys
from webhook_service.testing import FakeHubSpot
from webhook_service.testing.netns import Deployment, Network, unavailable

from .conftest import ROOT, SECRET, TOKEN
from .multihost_handlers import Ledger
from .resilience.procs import wait_until
from .resilience.sender import Sender, contact_events, split

WHY_NOT = unavailable()
pytestmark = [pytest.mark.resilience,
              pytest.mark.skipif(WHY_NOT is not None, reason=f"needs network namespaces: {WHY_NOT}")]
EVENTS, STREAM_SECONDS = 240, 8.0


@pytest.fixture
def network() -> Iterator[Network]:
    with Network("abc") as made:
        yield made


@pytest.fixture
def deployment(network: Network, tmp_path: Path, request) -> Iterator[Deployment]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    with FakeHubSpot(host=network.gateway, tokens={TOKEN}) as hubspot:
        for object_id in range(1, EVENTS + 1):
            hubspot.add("contacts", object_id, {"email": f"c{object_id}@example.com"})
        try:
            yield Deployment(network, log_dir, api_base_url=hubspot.url, secret=SECRET, token=TOKEN,
                             handlers="tests.multihost_handlers:router",
                             extra={"PYTHONPATH": str(ROOT), "HUBHOOK_JOB_TIMEOUT": "5",
                                    "HUBHOOK_POLL_LOCK_TTL": "3", "HUBHOOK_POLL_INTERVAL": "2",
                                    "HUBHOOK_COALESCE_MAX_EVENTS": "10", "HUBHOOK_HANDLER_RETRIES": "1,1,1"})
        finally:
            network.close()   # before the fake stops: no worker is left calling it
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                for log in sorted(log_dir.glob("*.log")):
                    tail = log.read_text(errors="replace").splitlines()[-20:]
                    print(f"---- {log.name}\n" + "\n".join(tail))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    setattr(item, f"rep_{outcome.get_result().when}", outcome.get_result())


def leader_pid(redis: Redis) -> int | None:
    """The pid in the poller leader lock's identity (host:pid:random), None when nobody holds it."""
    value = redis.get(keys.POLLER_LEADER)
    match = re.match(rb"^.*:(\d+):[0-9a-f]+$", value or b"")
    return int(match.group(1)) if match else None


def test_hosts_b_and_c_share_the_work_and_b_dying_loses_no_acknowledged_event(network, deployment):
    # Given Redis and `hubhook web` on host A, and `hubhook worker` + `hubhook poll` on hosts B and C
    redis, ledger = Redis.from_url(deployment.redis_url), Ledger(Redis.from_url(deployment.ledger_url))
    for letter in "bc":
        deployment.worker(letter)
        deployment.poller(letter)
    wait_until(lambda: leader_pid(redis) is not None, 30, "one poller to take the leader lock")
    events = contact_events(EVENTS)
    deliveries = split(events, random.Random(15), low=1, high=6)

    # When deliveries stream to A and, once a third is acknowledged, every process of B is SIGKILLed
    sender = Sender(deployment.url, SECRET).start(deliveries, per_second=len(deliveries) / STREAM_SECONDS)
    wait_until(lambda: ledger.by_host("b") and ledger.by_host("c"), 30, "both B and C to handle events")
    wait_until(lambda: len(sender.acked()) >= len(deliveries) // 3, 30, "a third of the stream to be acknowledged")
    b_pids = set(network["b"].kill_all())
    killed_at = time.monotonic()
    handled_by_b = ledger.by_host("b")
    sender.wait(120)

    # Then every acknowledged event reaches its handler (B's in-flight job runs again on C)
    assert not sender.errors and not sender.unacked(), sender.results
    acked = sender.acked_keys()
    try:
        wait_until(lambda: acked <= set(ledger.calls()), 90, "every acknowledged event to be handled")
    finally:
        print(f"\nmultihost: {len(acked)} acknowledged, {ledger.handled()} handled "
              f"(B {len(ledger.by_host('b'))}, C {len(ledger.by_host('c'))}), "
              f"{time.monotonic() - killed_at:.1f} s after B died; B's pids {sorted(b_pids)}")
    # and handlers ran on both hosts, on B only before it died
    assert handled_by_b and ledger.by_host("c")
    assert ledger.by_host("b") == handled_by_b
    assert not network["b"].pids()
    # and exactly one poller is active: the leader lock is held by C's poller, not by a dead B process
    c_pids = set(network["c"].pids())
    wait_until(lambda: leader_pid(redis) in c_pids, 15, "C's poller to hold the leader lock")
    assert leader_pid(redis) not in b_pids
