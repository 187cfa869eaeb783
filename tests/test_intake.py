"""Intake's one-script round trip: stable digests kept >= 48 h, jobs as RQ writes them, no redelivery."""
import time

from rq.job import Job

from webhook_service.telemetry import backlog
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import (
    _IDENTITY,
    _digest,
    delivery_job,
    enqueue_delivery,
    was_seen,
)
from webhook_service.testing import make_event


def test_a_change_is_identified_by_its_identity_fields_only(config):
    # A retry (higher attemptNumber, other extra fields) is the same change; any identity field differs -> new
    events = [make_event("contact.propertyChange", 1, property="email", value="é \"x\" \\ \u2028 😀"),
              make_event("deal.creation", 2**62),
              {**make_event("contact.creation", 3), "associationRemoved": True},
              {"subscriptionType": "object.creation", "objectId": 1, "occurredAt": 1.5}]
    for event in events:
        assert _digest({**event, "attemptNumber": 7, "changeSource": "x"}) == _digest(event)
        for field in _IDENTITY:
            assert _digest({**event, field: "other"}) != _digest(event), field
    assert len({_digest(e) for e in events}) == len(events)
    # and the digest is a pure function of the event (the same in every process and version)
    assert _digest(events[0]) == _digest(dict(reversed(list(events[0].items()))))


def test_a_seen_change_is_kept_at_least_the_dedupe_ttl(config, redis):
    queue = build_queue(config, redis)
    event = make_event("contact.creation", 1)
    enqueue_delivery(redis, queue, [event])
    assert was_seen(redis, event) and not was_seen(redis, make_event("contact.creation", 2))
    [key] = redis.keys("hubhook:seen:*")
    # Its set is looked up for the two buckets after its own, so it expires no sooner than 48 h from now
    assert 48 * 3600 - 1 <= redis.ttl(key) <= 72 * 3600
    # and a shorter TTL (the poller's) gets its own sets, expiring with it
    polled = make_event("contact.creation", 3)
    enqueue_delivery(redis, queue, [polled], dedupe_ttl=3600)
    assert was_seen(redis, polled, dedupe_ttl=3600) and not was_seen(redis, polled)
    assert 3600 - 1 <= redis.ttl(next(k for k in redis.keys("hubhook:seen:3600:*"))) <= 5400


def test_the_job_is_what_rq_itself_would_save(config, redis):
    queue = build_queue(config, redis)
    events = [make_event("contact.creation", i) for i in (1, 2)]
    result = enqueue_delivery(redis, queue, events)
    # RQ's own enqueue of the same job, for comparison
    reference = queue.enqueue_job(delivery_job(queue, events, job_id="delivery-reference"))
    ours, theirs = redis.hgetall(f"rq:job:{result.job_id}"), redis.hgetall(reference.key)
    volatile = {b"created_at", b"enqueued_at", b"data"}
    assert {k: v for k, v in ours.items() if k not in volatile} == \
        {k: v for k, v in theirs.items() if k not in volatile}
    job = Job.fetch(result.job_id, connection=redis, serializer=queue.serializer)
    assert job.args == [events] and job.get_status() == "queued"
    assert queue.job_ids == [result.job_id, "delivery-reference"]
    assert redis.sismember("rq:queues", queue.key)
    assert all(was_seen(redis, e) for e in events)
    assert backlog.read(redis) == 2


def test_a_delivery_larger_than_one_exists_call_is_deduped_whole(config, redis):
    queue = build_queue(config, redis)
    events = [make_event("contact.creation", i) for i in range(1, 2502)]
    assert enqueue_delivery(redis, queue, events).enqueued == 2501
    # Two redelivered events among new ones: only the new ones are enqueued, in one job
    again = [events[0], make_event("contact.creation", 9001), events[2500], make_event("contact.creation", 9002)]
    result = enqueue_delivery(redis, queue, again)
    assert (result.enqueued, result.duplicates) == (2, 2)
    assert [e["objectId"] for e in Job.fetch(result.job_id, connection=redis, serializer=queue.serializer).args[0]] \
        == [9001, 9002]
    assert enqueue_delivery(redis, queue, events).job_id is None
    assert queue.count == 2 and backlog.read(redis) == 2503


def test_a_redis_that_forgot_the_script_still_takes_deliveries(config, redis):
    queue = build_queue(config, redis)
    assert enqueue_delivery(redis, queue, [make_event("contact.creation", 1)]).enqueued == 1
    redis.script_flush()  # what a Redis restart does to the script cache
    assert enqueue_delivery(redis, queue, [make_event("contact.creation", 2)]).enqueued == 1
    assert queue.count == 2


def test_throttled_and_all_seen_write_nothing(config, redis):
    queue = build_queue(config, redis)
    first = [make_event("contact.creation", 1)]
    enqueue_delivery(redis, queue, first)
    # A delivery of redeliveries only is acknowledged even at the limit; a new event is refused
    assert not enqueue_delivery(redis, queue, first, max_pending=1).throttled
    fresh = make_event("contact.creation", 2)
    refused = enqueue_delivery(redis, queue, [*first, fresh], max_pending=1)
    assert refused.throttled and refused.pending == 1 and refused.job_id is None
    assert not was_seen(redis, fresh) and was_seen(redis, first[0])
    assert queue.count == 1 and backlog.read(redis) == 1


def test_a_digest_is_seen_for_its_whole_ttl_and_then_forgotten(config, redis):
    # ttl=2: one-second buckets, so the whole window passes in a few seconds of real (Redis) time
    queue = build_queue(config, redis)
    event = make_event("contact.creation", 1)
    enqueue_delivery(redis, queue, [event], dedupe_ttl=2)
    written = time.time()
    while time.time() - written < 2:
        assert was_seen(redis, event, dedupe_ttl=2)
        assert enqueue_delivery(redis, queue, [event], dedupe_ttl=2).job_id is None
        time.sleep(0.2)
    time.sleep(1.2)
    assert not was_seen(redis, event, dedupe_ttl=2) and not redis.keys("hubhook:seen:2:*")
