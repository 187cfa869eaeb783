"""Intake's one-script round trip: stable digests kept >= 48 h, jobs as RQ writes them, no redelivery."""
import time

from rq.defaults import RQ_KEY_PREFIX
from rq.job import Job

from webhook_service import keys
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import (
    _digest,
    delivery_job,
    drop_stale,
    enqueue_delivery,
    was_seen,
)
from webhook_service.telemetry import backlog
from webhook_service.testing import make_event

from .conftest import queued_jobs


def test_a_change_is_identified_by_everything_hubspot_sent_but_the_attempt_number(config):
    # Given events of several shapes, with values JSON makes awkward
    events = [make_event("contact.propertyChange", 1, property="email", value="é \"x\" \\ \u2028 😀"),
              make_event("deal.creation", 2**62),
              {**make_event("contact.creation", 3), "associationRemoved": True},
              {"subscriptionType": "object.creation", "objectId": 1, "occurredAt": 1.5}]
    for event in events:
        # Then a retry (only attemptNumber higher) is the same change
        assert _digest({**event, "attemptNumber": 7}) == _digest(event)
        # and any other field differing, added or missing makes it another change
        for field in [k for k in event if k != "attemptNumber"]:
            assert _digest({**event, field: "other"}) != _digest(event), field
            assert _digest({k: v for k, v in event.items() if k != field}) != _digest(event), field
        assert _digest({**event, "changeSource": "INTEGRATION"}) != _digest({**event, "changeSource": "CRM"})
    assert len({_digest(e) for e in events}) == len(events)
    # and the digest is a pure function of the event: key order, at any depth, does not matter
    assert _digest(events[0]) == _digest(dict(reversed(list(events[0].items()))))
    assert _digest({**events[1], "x": {"a": 1, "b": [2]}}) == _digest({**events[1], "x": {"b": [2], "a": 1}})


def test_messages_hubspot_documents_as_distinct_are_not_collapsed(config, redis):
    # Given the two messages HubSpot may send for one association, primary and not, and a merge
    # and a change that differ only in fields the old identity left out
    base = make_event("contact.associationChange", 1, fromObjectId=1, toObjectId=9,
                      associationType="CONTACT_TO_COMPANY", fromObjectTypeId="0-1", toObjectTypeId="0-2")
    pairs = [
        ({**base, "isPrimaryAssociation": True}, {**base, "isPrimaryAssociation": False}),
        ({**base, "associationType": "CONTACT_TO_COMPANY"},
         {**base, "associationType": "COMPANY_TO_CONTACT"}),
        (make_event("contact.merge", 5, primaryObjectId=5, mergedObjectIds=[6], event_id=1, occurred_at=10),
         make_event("contact.merge", 5, primaryObjectId=5, mergedObjectIds=[7], event_id=1, occurred_at=10)),
        (make_event("deal.creation", 8, event_id=2, occurred_at=10, sourceId="userId:1"),
         make_event("deal.creation", 8, event_id=2, occurred_at=10, sourceId="userId:2")),
    ]
    queue = build_queue(config, redis)
    for first, second in pairs:
        # When both arrive in one delivery
        result = enqueue_delivery(redis, queue, [first, second])
        # Then both are enqueued, neither is taken for a redelivery of the other
        assert (result.enqueued, result.duplicates) == (2, 0), first


def test_a_seen_change_is_kept_at_least_the_dedupe_ttl(config, redis):
    queue = build_queue(config, redis)
    event = make_event("contact.creation", 1)
    enqueue_delivery(redis, queue, [event])
    assert was_seen(redis, event) and not was_seen(redis, make_event("contact.creation", 2))
    [key] = redis.keys(f"{keys.PREFIX}:seen:*")
    # Its set is looked up for the two buckets after its own, so it expires no sooner than 48 h from now
    assert 48 * 3600 - 1 <= redis.ttl(key) <= 72 * 3600
    # and a shorter TTL (the poller's) gets its own sets, expiring with it
    polled = make_event("contact.creation", 3)
    enqueue_delivery(redis, queue, [polled], dedupe_ttl=3600)
    assert was_seen(redis, polled, dedupe_ttl=3600) and not was_seen(redis, polled)
    assert 3600 - 1 <= redis.ttl(next(k for k in redis.keys(f"{keys.PREFIX}:seen:3600:*"))) <= 5400


def test_the_job_is_what_rq_itself_would_save(config, redis):
    queue = build_queue(config, redis)
    events = [make_event("contact.creation", i) for i in (1, 2)]
    result = enqueue_delivery(redis, queue, events)
    # RQ's own enqueue of the same job, for comparison
    reference = queue.enqueue_job(delivery_job(queue, events, job_id="delivery-reference"))
    ours, theirs = redis.hgetall(f"{RQ_KEY_PREFIX}:job:{result.job_id}"), redis.hgetall(reference.key)
    volatile = {b"created_at", b"enqueued_at", b"data"}
    assert {k: v for k, v in ours.items() if k not in volatile} == \
        {k: v for k, v in theirs.items() if k not in volatile}
    job = Job.fetch(result.job_id, connection=redis, serializer=queue.serializer)
    assert job.args == [events] and job.get_status() == "queued"
    assert queue.job_ids == [result.job_id, "delivery-reference"]
    assert redis.sismember(f"{RQ_KEY_PREFIX}:queues", queue.key)
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
    assert len(queued_jobs(redis, queue)) == 2 and backlog.read(redis) == 2503


def test_a_redis_that_forgot_the_script_still_takes_deliveries(config, redis):
    queue = build_queue(config, redis)
    assert enqueue_delivery(redis, queue, [make_event("contact.creation", 1)]).enqueued == 1
    redis.script_flush()  # what a Redis restart does to the script cache
    assert enqueue_delivery(redis, queue, [make_event("contact.creation", 2)]).enqueued == 1
    assert len(queued_jobs(redis, queue)) == 2


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
    assert not was_seen(redis, event, dedupe_ttl=2) and not redis.keys(f"{keys.PREFIX}:seen:2:*")


def test_only_events_older_than_the_window_are_stale():
    # Given events at the edge of a one-hour window
    now = 1_700_000_000.0
    edge = make_event("contact.creation", 1, occurred_at=int((now - 3600) * 1000))
    older = make_event("contact.creation", 2, occurred_at=int((now - 3600) * 1000) - 1)
    future = make_event("contact.creation", 3, occurred_at=int((now + 60) * 1000))
    # Then exactly the one that occurred before it is stale, order kept
    assert drop_stale([older, edge, future], 3600, now=now) == ([edge, future], 1)


def test_the_poller_path_enqueues_old_changes(config, redis):
    # A backfill enqueues changes of any age: intake itself never drops old events
    queue = build_queue(config, redis)
    assert enqueue_delivery(redis, queue, [make_event("contact.creation", 1, occurred_at=1)],
                            source="poll", dedupe_ttl=3600).enqueued == 1
