"""Redis Sentinel: the master dies mid-stream, a sentinel promotes its replica, nothing acknowledged is lost.

Redis replicates asynchronously: a write the master acknowledged may not have reached the replica
when the master dies, and the promoted replica then never had it. With ``HUBHOOK_REDIS_MIN_REPLICAS=1``
the receiver runs Redis's ``WAIT 1`` after each delivery's writes and answers 2xx only once the replica
confirmed them (503 + Retry-After when it does not in time), so an acknowledged delivery is on the
replica before HubSpot hears "accepted". The processes find the master through the sentinels
(``REDIS_URL=redis+sentinel://...``) and follow the failover without a restart.
"""
import random
import threading
import time
from dataclasses import replace

import pytest

from webhook_service.receiver.app import create_app
from webhook_service.receiver.intake import was_seen
from webhook_service.receiver.routes import REPLICATION_RETRY_AFTER
from webhook_service.testing import make_event, signed_delivery
from webhook_service.testing.redis_topologies import SentinelGroup

from ..conftest import SECRET
from .ledger import event_key
from .procs import wait_until
from .sender import Sender, contact_events, split

pytestmark = pytest.mark.resilience
EVENTS, STREAM_SECONDS = 600, 10.0


@pytest.fixture
def sentinels(tmp_path):
    with SentinelGroup(tmp_path / "sentinel") as group:
        yield group


def test_a_master_failover_mid_stream_loses_no_acknowledged_event(stack, sentinels, ledger, contacts):
    # Given the receiver and two workers on a Sentinel-watched master with one replica, waiting for 1 replica
    contacts(EVENTS)
    env = {"REDIS_URL": sentinels.url, "HUBHOOK_REDIS_MIN_REPLICAS": "1"}
    web = stack.web(**env)
    stack.workers(2, RES_HANDLER_SLEEP="0.005", **env)
    replica = sentinels.replica.client()
    events = contact_events(EVENTS)
    by_key = {event_key(e): e for e in events}
    not_replicated, lock = [], threading.Lock()

    def on_replica(delivery, response):
        """At the moment of each 2xx: the replica (the master after the failover) holds every event."""
        absent = [event_key(e) for e in delivery.events if not was_seen(replica, e)]
        with lock:
            not_replicated.extend(absent)

    deliveries = split(events, random.Random(5), low=1, high=20)
    sender = Sender(web.url, SECRET, on_ack=on_replica, give_up_after=150)
    sender.start(deliveries, per_second=len(deliveries) / STREAM_SECONDS)

    # When the master is SIGKILLed a third into the stream, and restarted (as a supervisor would) once the
    # sentinels promoted the replica, so it rejoins as the new master's replica
    wait_until(lambda: len(sender.acked()) >= len(sender.deliveries) // 3, 30, "a third of the stream to be acked")
    sentinels.master.kill()
    killed_at = time.monotonic()
    acked_before = sender.acked_keys()
    wait_until(sentinels.failed_over, 30, "the sentinels to promote the replica")
    promoted_after = time.monotonic() - killed_at
    sentinels.master.start()
    sender.wait(180)

    # Then every delivery was acknowledged in the end, each only once the replica had it
    assert not sender.errors and not sender.unacked(), sender.results
    assert acked_before and not not_replicated, f"{len(not_replicated)} events acknowledged before replication"
    # and every event, those acknowledged before the kill included, reaches its handler
    try:
        wait_until(lambda: ledger.has_all(set(by_key)), 120, "every event to be handled")
    finally:
        print(f"\nsentinel failover: promoted {promoted_after:.1f} s after the kill; sender results "
              f"{dict(sender.results)}; handled {ledger.handled()}/{EVENTS}; "
              f"{sum(ledger.duplicates().values())} duplicate calls")
    assert set(ledger.calls()) == set(by_key)


def test_a_delivery_no_replica_confirms_is_answered_503_with_retry_after(config, redis):
    # Given a receiver that must see each delivery on one replica, on a Redis that has none
    client = create_app(replace(config, redis_min_replicas=1)).test_client()
    body, headers = signed_delivery([make_event("contact.creation", 7)], SECRET, config.webhook_url)
    # When HubSpot posts a delivery
    response = client.post("/webhooks/hubspot", data=body, headers=headers)
    # Then it is refused with 503 and a Retry-After, so HubSpot sends it again
    assert response.status_code == 503, response.json
    assert response.headers["Retry-After"] == str(REPLICATION_RETRY_AFTER)
    assert "0 of 1 Redis replicas" in response.json["error"]
