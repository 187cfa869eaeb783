"""Kill -9 a random worker every 2 s while 1,000 events stream in.

A supervisor (like systemd or Kubernetes) restarts each killed worker. Every event must reach its
handler; a kill may repeat at most the run the killed worker had in flight (hubhook's workers are
SimpleWorkers: one job, so one batch of deliveries, at a time), so duplicates are bounded by those
runs; and everything must be handled within 60 s of the last kill. With ``HUBHOOK_JOB_TIMEOUT=10``
docs/deployment.md promises an abandoned job runs again within about job_timeout + 45 s = 55 s.

The short tests after it pin, one at a time, the RQ recovery stalls this storm exposed
(``webhook_service.private_apis.recovery``), so a regression shows up in seconds rather than as a slow storm.
"""
import random
import time

import pytest
from rq.executions import Execution
from rq.scheduler import RQScheduler

from jobs.worker.worker import build_worker
from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.private_apis.recovery import maintain, release_dead_scheduler_locks
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import make_event

from ..conftest import SECRET, drain, fast_paths_only
from .conftest import pending_work, quiescent
from .ledger import event_key
from .procs import wait_until
from .sender import Sender, contact_events, split

pytestmark = [pytest.mark.resilience, fast_paths_only]  # the recovery timings are the fast path's
EVENTS, WORKERS, KILL_EVERY, STREAM_SECONDS, RECOVERY_LIMIT = 1000, 3, 2.0, 20.0, 60.0


def test_a_worker_killed_every_2_s_loses_nothing_and_recovers_within_60_s(stack, stack_client, ledger, contacts):
    # Given the receiver and three supervised workers whose handler takes 30 ms per object
    rng = random.Random(1)
    contacts(EVENTS)
    web = stack.web()
    pool = stack.workers(WORKERS, RES_HANDLER_SLEEP="0.03")
    events = contact_events(EVENTS)
    keys = {event_key(e) for e in events}
    deliveries = split(events, rng, low=1, high=20)

    # When 1,000 events stream in over ~20 s and a random worker is SIGKILLed every 2 s meanwhile
    sender = Sender(web.url, SECRET).start(deliveries, per_second=len(deliveries) / STREAM_SECONDS)
    storm_ends = time.monotonic() + 3 * STREAM_SECONDS
    while not sender.done and time.monotonic() < storm_ends:
        time.sleep(KILL_EVERY)  # the storm's schedule, not a wait for an outcome
        pool.kill_random(rng)
    sender.wait(10)
    last_kill = pool.kills[-1]

    # Then every event is handled and RQ holds nothing more, within 60 s of the last kill
    assert not sender.errors and not sender.unacked()
    try:
        wait_until(lambda: ledger.has_all(keys) and quiescent(stack_client), 150, "every event to be handled")
    finally:
        recovery = time.monotonic() - last_kill
        duplicates = ledger.duplicates()
        cut_short = ledger.last_runs(pool.killed)
        print(f"\nworker kills: {len(pool.kills)} kills, {pool.restarts} restarts, "
              f"{len(cut_short)} killed workers had run a job, "
              f"{sum(duplicates.values())} duplicate handler calls on {len(duplicates)} events, "
              f"recovery {recovery:.1f} s after the last kill, pending {pending_work(stack_client)}")
    assert set(ledger.calls()) == keys and not ledger.unenriched()
    assert recovery <= RECOVERY_LIMIT, f"recovered {recovery:.1f} s after the last kill (limit {RECOVERY_LIMIT} s)"
    # and the only duplicates are events of the run each killed worker had in flight: at most one per kill
    stray = [k for k in duplicates if not ledger.runs_of(k) & cut_short]
    assert not stray, f"{len(stray)} events were handled twice without a kill interrupting their run"
    assert sum(duplicates.values()) <= sum(len(ledger.keys_of(run)) for run in cut_short)


def test_a_job_whose_first_worker_died_finishes_cleanly_when_run_again(config, redis, hubspot):
    # Given a delivery job whose first execution died with its worker: the execution's hash expired
    # but RQ still lists its id for another 60 s (the state a re-run after a SIGKILL starts from)
    calls = []
    router = Router()
    router.add(lambda event: calls.append(event.object_id), "contact.*", name="count")
    hubspot.add("contacts", 7, {"email": "x@example.com"})
    queue = build_queue(config, redis)
    job_id = enqueue_delivery(redis, queue, [make_event("contact.creation", 7)]).job_id
    with redis.pipeline() as pipe:
        dead = Execution.create(queue.fetch_job(job_id), ttl=25, pipeline=pipe, worker_name="killed")
        pipe.execute()
    redis.delete(dead.key)
    # When a worker runs it again
    drain(config, router)
    # Then the handler ran once and the job finished: not failed, not scheduled for a retry
    assert calls == ["7"]
    assert queue.failed_job_registry.get_job_count(cleanup=False) == 0
    assert queue.scheduled_job_registry.get_job_count(cleanup=False) == 0


def test_the_scheduler_lock_of_a_dead_worker_is_freed_within_one_maintenance_pass(redis):
    # Given RQ's scheduler lock, once as a live scheduler keeps it (61 s TTL) and once left by a
    # scheduler that has not refreshed it for 15 s
    live, dead = RQScheduler.get_locking_key("live"), RQScheduler.get_locking_key("dead")
    redis.set(live, "scheduler-a", ex=61)
    redis.set(dead, "scheduler-b", ex=46)
    # When a worker's maintenance pass looks at both
    freed = release_dead_scheduler_locks(redis, ["live", "dead"])
    # Then only the dead scheduler's lock is gone
    assert freed == 1
    assert redis.get(live) == b"scheduler-a" and not redis.exists(dead)


def test_a_job_dequeued_by_a_worker_that_died_before_starting_it_is_retried_after_10_s(config, redis, hubspot):
    # Given a delivery job left in RQ's intermediate list, first seen there 11 s ago, by no running worker
    router = Router()
    router.add(lambda event: None, "contact.*", name="noop")
    queue = build_queue(config, redis)
    job_id = enqueue_delivery(redis, queue, [make_event("contact.creation", 8)]).job_id
    redis.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT")  # what the dying worker's BLMOVE did
    redis.set(queue.intermediate_queue.get_first_seen_key(job_id), time.time() - 11)
    # When a worker's maintenance pass runs
    assert maintain(build_worker(config, router), queue)
    # Then the job left the intermediate list and is scheduled for its first retry (not lost, not 60 s later)
    assert redis.llen(queue.intermediate_queue_key) == 0
    assert queue.scheduled_job_registry.get_job_ids(cleanup=False) == [job_id]
