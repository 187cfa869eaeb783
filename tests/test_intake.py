"""Intake's one-script round trip: the same seen-keys as before, jobs exactly as RQ writes them, no redelivery."""
import hashlib
import json

from rq.job import Job

from jobs import pending
from jobs.connection import queue as build_queue
from webhook_service.intake import _IDENTITY, dedupe_key, delivery_job, enqueue_delivery
from webhook_service.testing import make_event


def test_seen_keys_are_the_ones_earlier_versions_wrote(config):
    # Keys already in Redis at an upgrade must still match HubSpot's retries of those events
    events = [make_event("contact.propertyChange", 1, property="email", value="é \"x\" \\ \u2028 😀"),
              make_event("deal.creation", 2**62), {**make_event("contact.creation", 3), "associationRemoved": True},
              {"subscriptionType": "object.creation", "objectId": 1, "occurredAt": 1.5}]
    for event in events:
        identity = json.dumps([event.get(f) for f in _IDENTITY], separators=(",", ":"), default=str)
        assert dedupe_key(event, "hubhook") == \
            f"hubhook:seen:{hashlib.blake2b(identity.encode(), digest_size=12).hexdigest()}"


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
    assert redis.ttl(dedupe_key(events[0], "hubhook")) > 47 * 3600
    assert pending.read(redis) == 2


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
    assert queue.count == 2 and pending.read(redis) == 2503


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
    refused = enqueue_delivery(redis, queue, [*first, make_event("contact.creation", 2)], max_pending=1)
    assert refused.throttled and refused.pending == 1 and refused.job_id is None
    assert not redis.exists(dedupe_key(make_event("contact.creation", 2), "hubhook"))
    assert queue.count == 1 and pending.read(redis) == 1
