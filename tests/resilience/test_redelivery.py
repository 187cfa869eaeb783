"""HubSpot redelivers; every change still reaches its handler exactly once.

HubSpot retries a delivery with a higher ``attemptNumber`` and guarantees neither order nor
uniqueness, so here every event arrives three times (attempts 0, 1 and 2), shuffled across
deliveries of random sizes, ten requests in flight: copies of one event race each other in
concurrent requests and sometimes share a request. The receiver's dedupe (seen-keys written in the
same MULTI/EXEC as the job) must let exactly one copy through.
"""
import random
import threading
from collections import Counter

import pytest

from ..conftest import SECRET
from .conftest import quiescent
from .procs import wait_until
from .sender import Sender, contact_events, split

pytestmark = pytest.mark.resilience
EVENTS = 1000


def test_three_deliveries_of_every_event_run_each_handler_once(stack, stack_client, ledger, contacts):
    # Given the receiver, two workers and 1,000 contacts HubSpot will report changes for
    rng = random.Random(4)
    contacts(EVENTS)
    web = stack.web()
    stack.workers(2)
    events = contact_events(EVENTS)
    copies = [{**e, "attemptNumber": attempt} for attempt in range(3) for e in events]
    rng.shuffle(copies)
    answers, lock = Counter(), threading.Lock()

    def count(delivery, response):
        with lock:
            answers.update({k: response.json()[k] for k in ("received", "enqueued", "duplicates")})

    # When every event is delivered three times, interleaved and out of order
    sender = Sender(web.url, SECRET, on_ack=count).send(split(copies, rng), timeout=120)

    # Then every request is acknowledged, exactly one copy of each event was enqueued...
    assert not sender.errors and not sender.unacked()
    assert answers == {"received": 3 * EVENTS, "enqueued": EVENTS, "duplicates": 2 * EVENTS}
    # ...and once the workers are done each handler ran exactly once per event
    keys = {f"{e['objectId']}:{e['eventId']}" for e in events}
    wait_until(lambda: ledger.has_all(keys) and quiescent(stack_client), 60, "the workers to handle every event")
    calls = ledger.calls()
    assert set(calls) == keys
    assert Counter(calls.values()) == {1: EVENTS}
    assert not ledger.unenriched()
