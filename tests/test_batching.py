"""Backlog batching: queued one-event deliveries are enriched together, and no claimed delivery is
ever lost, whether the batch succeeds, fails unexpectedly or its worker dies."""
import time
from pathlib import Path

import pytest
from rq.job import _current_job

from jobs import coalesce, deadletter
from jobs.connection import queue as build_queue
from webhook_service import Router
from webhook_service.intake import enqueue_delivery
from webhook_service.testing import make_event

from .conftest import drain
from .quota_support import HUBHOOK, deliver, ledger, spawn_workers, stop, wait_until


def contacts_router(seen):
    router = Router()
    router.add(seen.append, "contact.*", name="contacts", properties=["email"], associations=["companies"])
    return router


def test_a_backlog_of_one_event_deliveries_costs_a_few_batch_calls(config, redis, hubspot):
    # Given 250 one-event deliveries queued while no worker ran
    for i in range(1, 251):
        hubspot.add("contacts", i, {"email": f"c{i}@example.com"})
        hubspot.add("companies", 5000 + i)
        hubspot.associate("contacts", i, "companies", 5000 + i)
        deliver(config, redis, [make_event("contact.creation", i)])
    hubspot.reset_calls()
    seen = []
    # When a worker drains the queue
    drain(config, contacts_router(seen))
    # Then each contact reached the handler once, enriched, for 6 calls instead of 500
    assert sorted(int(e.object_id) for e in seen) == list(range(1, 251))
    assert all(e.associations["companies"] == [str(5000 + int(e.object_id))] for e in seen)
    assert hubspot.count() == 6 and all(len(c.body["inputs"]) <= 100 for c in hubspot.calls)
    assert coalesce.claimed_count(redis) == 0 and redis.keys("rq:job:*") == []


def test_full_deliveries_and_other_sources_are_not_taken_along(config, redis, hubspot):
    for i in range(1, 201):
        hubspot.add("contacts", i)
    queue = build_queue(config, redis)
    enqueue_delivery(redis, queue, [make_event("contact.creation", i) for i in range(1, 61)])
    enqueue_delivery(redis, queue, [make_event("contact.creation", i) for i in range(61, 121)])
    enqueue_delivery(redis, queue, [make_event("contact.creation", 150)], source="poll")
    enqueue_delivery(redis, queue, [make_event("contact.creation", 151)])
    hubspot.reset_calls()
    seen = []
    drain(config, contacts_router(seen))
    assert {e.object_id: e.source for e in seen if e.object_id in ("150", "151")} == {"150": "poll", "151": "webhook"}
    sizes = sorted(len(c.body["inputs"]) for c in hubspot.calls if "/contacts/batch/read" in c.path)
    assert sizes == [1, 60, 61]  # 61 = the second full delivery plus the lone webhook event behind it


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_a_lone_event_is_not_held_back(config, env, redis, hubspot, tmp_path):
    hubspot.add("contacts", 1)
    hubspot.add("contacts", 2)
    worker = spawn_workers(1, {**env, "HUBHOOK_HANDLERS": "tests.quota_handlers:router"}, tmp_path)
    try:
        deliver(config, redis, [make_event("contact.creation", 1)])
        wait_until(lambda: len(ledger(redis)) == 1, 30, "the worker to start")
        started = time.monotonic()
        deliver(config, redis, [make_event("contact.creation", 2)])
        wait_until(lambda: len(ledger(redis)) == 2, 10, "the second event")
        assert time.monotonic() - started < 0.5
    finally:
        stop(worker)


def test_an_unexpected_failure_gives_the_claimed_deliveries_back(config, redis, hubspot):
    # Given 20 queued deliveries and a HubSpot answer the batch cannot make sense of
    for i in range(1, 21):
        hubspot.add("contacts", i)
        deliver(config, redis, [make_event("contact.creation", i)])
    hubspot.fail_next(1, 200, body={"status": "COMPLETE", "results": "not a list"}, path_contains="/batch/read")
    seen = []
    # When the worker drains the queue
    drain(config, contacts_router(seen))
    # Then the batch was given back and each delivery ran alone once; nothing is parked
    assert sorted(int(e.object_id) for e in seen) == list(range(1, 21))
    assert len(redis.keys("hubhook:coalesce:solo:*")) == 20
    assert deadletter.dead_letters(config) == [] and coalesce.claimed_count(redis) == 0


def test_deliveries_claimed_by_a_worker_that_died_are_given_back(config, redis, hubspot):
    # Given 5 queued deliveries, the first taken by a worker that claimed the other 4 and died
    for i in range(1, 6):
        hubspot.add("contacts", i)
        deliver(config, redis, [make_event("contact.creation", i)])
    queue = build_queue(config, redis)
    leader = queue.fetch_job(redis.lpop(queue.key).decode())
    token = _current_job.set(leader)
    try:
        batch = coalesce.gather(redis, queue, leader.args[0], "webhook", 0, max_events=100,
                                job_timeout=-coalesce.LEASE_GRACE - 1)   # a lease that has already run out
    finally:
        _current_job.reset(token)
    assert len(batch.claimed) == 4 and queue.count == 0 and coalesce.claimed_count(redis) == 4
    queue.enqueue_job(leader)  # RQ's own recovery of the dead worker's job
    seen = []
    # When a worker runs its maintenance and drains the queue
    drain(config, contacts_router(seen))
    # Then all five deliveries were handled
    assert sorted(int(e.object_id) for e in seen) == [1, 2, 3, 4, 5]
    assert coalesce.claimed_count(redis) == 0
