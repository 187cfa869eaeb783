"""A gunicorn worker is SIGKILLed while it is answering deliveries.

The receiver's contract is "2xx only once the delivery is durably in Redis". A worker killed
mid-request either never answers (the sender sees the connection drop and retries, like HubSpot) or
had already committed the MULTI/EXEC (then the retry is a redelivery the seen-keys absorb). What must
never happen is a 2xx for an event Redis does not have: the sender checks that the moment each 2xx
arrives, and at the end every event must have reached its handler exactly once.
"""
import random
import threading
import time
from collections import Counter

import pytest

from webhook_service.receiver.intake import was_seen

from ..conftest import SECRET
from .conftest import pending_work, quiescent
from .ledger import event_key
from .procs import wait_until
from .sender import Sender, contact_events, split

pytestmark = pytest.mark.resilience
EVENTS, KILLS, KILL_EVERY = 2000, 6, 0.3


def test_killing_a_receiver_worker_mid_request_never_acknowledges_a_lost_event(stack, stack_client, ledger,
                                                                               contacts):
    # Given the receiver (two gunicorn workers) and two hubhook workers
    rng = random.Random(3)
    contacts(EVENTS)
    web = stack.web()
    stack.workers(2)
    events = contact_events(EVENTS)
    keys = {event_key(e) for e in events}
    not_in_redis, lock = [], threading.Lock()

    def check_durable(delivery, response):
        """At the moment of the 2xx: is every event of the delivery marked seen in Redis?"""
        absent = [event_key(e) for e in delivery.events if not was_seen(stack_client, e)]
        with lock:
            not_in_redis.extend(absent)

    # When small deliveries stream in, ten in flight, and a gunicorn worker is SIGKILLed every 0.3 s
    sender = Sender(web.url, SECRET, on_ack=check_durable).start(split(events, rng, low=1, high=5))
    killed = []
    while not sender.done and len(killed) < KILLS:
        wait_until(lambda: web.worker_pids(), 10, "gunicorn to have a worker to kill")
        killed.append(web.kill_worker(rng))
        time.sleep(KILL_EVERY)  # the storm's schedule
    sender.wait(120)

    # Then some requests were cut off mid-flight and retried...
    failures = Counter({r: n for r, n in sender.results.items() if not r.startswith("2")})
    print(f"\nR5: {len(killed)} receiver workers killed; sender results {dict(sender.results)}")
    assert len(killed) >= 3, "the stream ended before the receiver could be killed three times"
    assert failures and set(failures) <= {"ConnectionError", "ReadTimeout", "ChunkedEncodingError"}, failures
    # ...no 2xx was ever sent for an event that was not in Redis, and every delivery was acknowledged
    assert not sender.errors and not sender.unacked()
    assert not not_in_redis, f"2xx for {len(not_in_redis)} events Redis did not have"
    # ...and every event reaches its handler exactly once
    wait_until(lambda: ledger.has_all(keys) and quiescent(stack_client), 90, "every event to be handled")
    calls = ledger.calls()
    assert set(calls) == keys and set(calls.values()) == {1}, pending_work(stack_client)
