"""Backlog batching: queued deliveries are enriched together (association reads across deliveries,
up to 1,000 ids a call; records 100 a call), and no claimed delivery is ever lost or handled twice,
whether the batch succeeds, runs long, fails unexpectedly or its worker dies."""
import dataclasses
import time
from pathlib import Path

import pytest
from rq.defaults import RQ_KEY_PREFIX
from rq.job import _current_job

from jobs.delivery import batching
from webhook_service import Router, keys
from webhook_service.connection import queue as build_queue
from webhook_service.operator import dead_letters
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import backlog
from webhook_service.testing import make_event

from .conftest import drain, queued_jobs
from .quota_support import HUBHOOK, deliver, ledger, spawn_workers, stop, wait_until

JOBS = f"{RQ_KEY_PREFIX}:job:*"

needs_hubhook = pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")


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
    # Then each contact reached the handler once, enriched, for 4 calls instead of 500: one batch of
    # 250, read as records 100 ids a call and its associations in one call
    assert sorted(int(e.object_id) for e in seen) == list(range(1, 251))
    assert all(e.associations["companies"] == [str(5000 + int(e.object_id))] for e in seen)
    assert sorted(len(c.body["inputs"]) for c in hubspot.calls if "/batch/read" in c.path) == [50, 100, 100, 250]
    assert hubspot.count() == 4
    assert batching.claimed_count(redis) == 0 and redis.keys(JOBS) == []


def test_without_association_reads_a_batch_stops_at_one_record_read(config, redis, hubspot):
    # (beyond 100 events a batch would save no call: records are read 100 ids a call)
    for i in range(1, 201):
        hubspot.add("contacts", i)
    queue = build_queue(config, redis)
    enqueue_delivery(redis, queue, [make_event("contact.creation", i) for i in range(1, 61)])
    enqueue_delivery(redis, queue, [make_event("contact.creation", i) for i in range(61, 121)])
    enqueue_delivery(redis, queue, [make_event("contact.creation", 150)], source="poll")
    enqueue_delivery(redis, queue, [make_event("contact.creation", 151)])
    hubspot.reset_calls()
    seen = []
    router = Router()
    router.add(seen.append, "contact.*", name="contacts", properties=["email"])
    drain(config, router)
    assert {e.object_id: e.source for e in seen if e.object_id in ("150", "151")} == {"150": "poll", "151": "webhook"}
    sizes = sorted(len(c.body["inputs"]) for c in hubspot.calls if "/contacts/batch/read" in c.path)
    assert sizes == [1, 60, 61]  # 61 = the second full delivery plus the lone webhook event behind it


@needs_hubhook
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
    assert len(redis.keys(f"{keys.PREFIX}:coalesce:solo:*")) == 20
    assert dead_letters.dead_letters(config) == [] and batching.claimed_count(redis) == 0


def test_deliveries_claimed_by_a_worker_that_died_are_given_back(config, redis, hubspot):
    # Given 5 queued deliveries, the first taken by a worker that claimed the other 4 and died
    for i in range(1, 6):
        hubspot.add("contacts", i)
        deliver(config, redis, [make_event("contact.creation", i)])
    queue = build_queue(config, redis)
    leader = queue.fetch_job(redis.lpop(queue.key).decode())
    token = _current_job.set(leader)
    try:
        batch = batching.gather(redis, queue, leader.args[0], "webhook", 0, max_events=100,
                                job_timeout=-batching.LEASE_GRACE - 1,   # a lease that has already run out
                                fair_slice=config.fair_slice)            # claimed from the portal's lane
    finally:
        _current_job.reset(token)
    assert len(batch.claimed) == 4 and queued_jobs(redis, queue) == [] and batching.claimed_count(redis) == 4
    queue.enqueue_job(leader)  # RQ's own recovery of the dead worker's job
    seen = []
    # When a worker runs its maintenance and drains the queue
    drain(config, contacts_router(seen))
    # Then all five deliveries were handled
    assert sorted(int(e.object_id) for e in seen) == [1, 2, 3, 4, 5]
    assert batching.claimed_count(redis) == 0


def deals_router(seen):
    router = Router()
    router.add(seen.append, "deal.propertyChange", name="stage", property="dealstage",
               properties=["dealname", "dealstage"], associations=["contacts", "companies"])
    return router


def seed_deals(hubspot, count):
    for i in range(1, count + 1):
        hubspot.add("deals", i, {"dealname": f"d{i}", "dealstage": "won"})
        hubspot.add("contacts", 100_000 + i)
        hubspot.add("companies", 200_000 + i)
        hubspot.associate("deals", i, "contacts", 100_000 + i)
        hubspot.associate("deals", i, "companies", 200_000 + i)


def stage_changes(first, count=100):
    return [make_event("deal.propertyChange", i, property="dealstage", value="won")
            for i in range(first, first + count)]


def association_sizes(hubspot, to_type):
    return [len(c.body["inputs"]) for c in hubspot.calls if c.path.endswith(f"/deals/{to_type}/batch/read")]


def test_queued_full_deliveries_share_association_reads_of_up_to_1000_ids(config, redis, hubspot):
    # Given 15 queued 100-event deliveries of distinct deals whose handler reads 2 association types
    seed_deals(hubspot, 1500)
    for n in range(15):
        deliver(config, redis, stage_changes(1 + 100 * n))
    hubspot.reset_calls()
    seen = []
    # When a worker drains the queue
    drain(config, deals_router(seen))
    # Then each association type is read across deliveries, up to 1,000 ids a call, records 100 a call:
    # 19 calls for 1,500 events instead of the 45 that one delivery per batch costs
    assert association_sizes(hubspot, "contacts") == association_sizes(hubspot, "companies") == [1000, 500]
    records = [len(c.body["inputs"]) for c in hubspot.calls if "/objects/" in c.path]
    assert records == [100] * 15 and hubspot.count() == 19
    # and every event reached its handler exactly once, with its own record and associations
    assert sorted(int(e.object_id) for e in seen) == list(range(1, 1501))
    assert all(e.record["properties"]["dealname"] == f"d{e.object_id}" for e in seen)
    assert all(e.associations == {"contacts": [str(100_000 + int(e.object_id))],
                                  "companies": [str(200_000 + int(e.object_id))]} for e in seen)
    assert batching.claimed_count(redis) == 0 and redis.keys(JOBS) == [] and backlog.read(redis) == 0


def test_a_batch_that_runs_long_hands_what_it_did_not_dispatch_to_a_new_job(config, redis, hubspot):
    # Given 8 queued 5-event deliveries, a handler taking 0.1 s per event, and a job timeout of 4 s
    # (a batch that took deliveries along dispatches for at most 2 s of it)
    for i in range(1, 41):
        hubspot.add("contacts", i)
        hubspot.add("companies", 5000 + i)
        hubspot.associate("contacts", i, "companies", 5000 + i)
    for n in range(8):
        deliver(config, redis, [make_event("contact.creation", i) for i in range(1 + 5 * n, 6 + 5 * n)])
    hubspot.reset_calls()
    seen = []

    def slow(event):
        time.sleep(0.1)
        seen.append(event)
    router = Router()
    router.add(slow, "contact.*", name="slow", associations=["companies"])
    # When a worker drains the queue
    drain(dataclasses.replace(config, job_timeout=4), router)
    # Then the first batch stopped dispatching at its deadline and its undispatched objects were read again
    # by the job they were handed to, yet every event reached the handler exactly once, enriched
    assert sorted(int(e.object_id) for e in seen) == list(range(1, 41))
    assert all(e.associations["companies"] == [str(5000 + int(e.object_id))] for e in seen)
    reads = sum(len(c.body["inputs"]) for c in hubspot.calls if "/objects/" in c.path)
    assert reads > 40
    # and nothing is left claimed, queued or counted as pending
    assert batching.claimed_count(redis) == 0 and redis.keys(JOBS) == [] and backlog.read(redis) == 0


@needs_hubhook
def test_worker_processes_read_associations_across_queued_deliveries(config, env, redis, hubspot, tmp_path):
    # Given 12 queued 100-event deliveries of distinct contacts whose handler reads their companies
    for i in range(1, 1201):
        hubspot.add("contacts", i, {"email": f"c{i}@example.com"})
        hubspot.add("companies", 5000 + i)
        hubspot.associate("contacts", i, "companies", 5000 + i)
    for n in range(12):
        deliver(config, redis, [make_event("contact.creation", i) for i in range(1 + 100 * n, 101 + 100 * n)])
    hubspot.reset_calls()
    # When two `hubhook worker` processes drain the queue
    workers = spawn_workers(2, {**env, "HUBHOOK_HANDLERS": "tests.quota_handlers:router"}, tmp_path)
    try:
        wait_until(lambda: len(ledger(redis)) >= 1200 and redis.keys(JOBS) == [], 60,
                   "all 1,200 events to be handled")
    finally:
        stop(workers)
    # Then every event reached the handler once, with its company
    handled = ledger(redis)
    assert sorted(int(e["id"]) for e in handled) == list(range(1, 1201))
    assert all(e["companies"] == [str(5000 + int(e["id"]))] for e in handled)
    # and association reads spanned deliveries (however the two workers split the queue), records did not
    links = [len(c.body["inputs"]) for c in hubspot.calls if "/contacts/companies/batch/read" in c.path]
    records = [len(c.body["inputs"]) for c in hubspot.calls if "/objects/" in c.path]
    assert sum(links) == 1200 and max(links) <= 1000 and max(links) >= 500 and len(links) <= 4
    assert sum(records) == 1200 and max(records) <= 100
    assert batching.claimed_count(redis) == 0
