"""Redis is SIGKILLed mid-stream and restarted on the same AOF directory.

The deployment advice of docs/deployment.md is ``appendonly yes`` + ``appendfsync everysec``; with it, a Redis
*process* crash loses nothing the receiver acknowledged, because Redis writes each command to the
AOF file (the kernel's page cache) before it answers. The receiver must answer 503 (or fail the
connection) while Redis is down, never 2xx, so HubSpot retries; the workers must reconnect; jobs a
worker was running when Redis died run again. Only a power loss could cost the last second, which a
process kill does not simulate.
"""
import random
import time

import pytest

from webhook_service.receiver.intake import was_seen

from ..conftest import SECRET
from .conftest import pending_work, quiescent
from .ledger import event_key, parse_run
from .procs import wait_until
from .sender import Sender, contact_events, split

pytestmark = pytest.mark.resilience
EVENTS, STREAM_SECONDS, OUTAGE, WORKERS = 2000, 10.0, 2.0, 2
BATCH = 100  # HUBHOOK_COALESCE_MAX_EVENTS: the most events one job (and so one worker) has in flight


def test_a_redis_crash_loses_no_acknowledged_event(stack, stack_redis, stack_client, ledger, contacts):
    # Given the receiver and two workers on a Redis with AOF (everysec), and a stream of 2,000 events
    rng = random.Random(2)
    contacts(EVENTS)
    web = stack.web()
    pool = stack.workers(WORKERS, RES_HANDLER_SLEEP="0.01")
    events = contact_events(EVENTS)
    by_key = {event_key(e): e for e in events}
    deliveries = split(events, rng, low=1, high=40)
    sender = Sender(web.url, SECRET, give_up_after=90).start(deliveries, per_second=len(deliveries) / STREAM_SECONDS)

    # When Redis is killed with SIGKILL a quarter into the stream and restarted on its directory 2 s later
    wait_until(lambda: len(sender.acked()) >= len(deliveries) // 4, 30, "a quarter of the stream to be acknowledged")
    stack_redis.kill()
    killed_at = time.monotonic()
    acked_before_kill = sender.acked_keys()
    time.sleep(OUTAGE)  # the outage
    stack_redis.start()
    restarted_at = time.time()
    during = [r for d in sender.deliveries for r in d.results]

    # Then everything acknowledged before the crash is still marked seen after the restart (AOF replay)
    assert acked_before_kill, "the kill came before any delivery was acknowledged"
    missing = [k for k in acked_before_kill if not was_seen(stack_client, by_key[k])]
    assert not missing, f"{len(missing)} acknowledged events were lost by the Redis restart"
    # and the receiver refused, rather than acknowledged, what arrived during the outage
    sender.wait(120)
    refused = {r for r in during if not r.startswith("2")}
    assert refused and refused <= {"503", "ConnectionError", "ReadTimeout"}, sender.results
    assert not sender.errors and not sender.unacked()
    # and after the retries every event reaches its handler, acknowledged ones included
    try:
        wait_until(lambda: ledger.has_all(set(by_key)) and quiescent(stack_client), 120, "every event to be handled")
    finally:
        duplicates = ledger.duplicates()
        print(f"\nR3: acked before the kill {len(acked_before_kill)} events; sender results {dict(sender.results)}; "
              f"handled {ledger.handled()}/{EVENTS} within {time.monotonic() - killed_at:.1f} s of the kill; "
              f"{sum(duplicates.values())} duplicate calls on {len(duplicates)} events; "
              f"worker restarts {pool.restarts}; pending {pending_work(stack_client)}")
    assert set(ledger.calls()) == set(by_key)
    # and duplicates come only from work that was in flight when Redis died (run again afterwards)
    first_run = {k: min(parse_run(r)[1] for r in ledger.runs_of(k)) for k in duplicates}
    late = [k for k, started in first_run.items() if started > restarted_at]
    assert not late, f"{len(late)} events first handled after the restart were handled twice"
    assert sum(duplicates.values()) <= WORKERS * BATCH
