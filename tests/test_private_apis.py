"""hubhook's use of RQ's and CPython's private internals (webhook_service.private_apis) stays safe.

Why: the fast paths override or copy code RQ and CPython do not promise to keep. These tests are the
tripwire that fails when the installed source of anything borrowed changes, the proof that every
RQ method hubhook's workers override is on that list, and the proof that the stock paths (an RQ
that was not tested, or HUBHOOK_FAST_PATHS=0) behave as the fast ones: the same job in Redis, the
same digests.
"""
from __future__ import annotations

import inspect
import json
import logging
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rq.worker import SimpleWorker

from jobs.worker.accounting import BookkeepingMixin
from jobs.worker.worker import HubhookMixin, HubhookWorker, StockHubhookWorker, build_worker
from webhook_service import Router, private_apis
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.errors import ConfigError
from webhook_service.private_apis import json_identity, written_against
from webhook_service.private_apis.lean_worker import LeanMixin
from webhook_service.private_apis.recovery import RecoveryMixin
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import make_event


def test_every_borrowed_function_is_the_source_hubhook_was_written_against():
    # Given the registry of every RQ, redis-py and CPython function hubhook overrides, copies or relies on
    # When the installed source of each is hashed
    drifted = [(entry, written_against.installed_hash(entry)) for entry in written_against.ENTRIES
               if written_against.installed_hash(entry) != entry.sha256]
    # Then none changed; else the message says what changed, who depends on it and what to re-check
    assert not drifted, "\n".join(
        [f"{len(drifted)} borrowed function(s) changed since hubhook's fast paths were written against them:"]
        + [f"- {entry.name} (now {now}, was {entry.sha256}), used by {entry.used_by}: re-check that "
           f"{entry.recheck}" for entry, now in drifted]
        + [("Then update the hashes in webhook_service/private_apis/written_against.py (and "
            "TESTED_RQ_VERSION in webhook_service/private_apis/__init__.py after an RQ upgrade).")])


@pytest.mark.parametrize("mixin", [LeanMixin, RecoveryMixin, HubhookMixin, BookkeepingMixin])
def test_every_rq_worker_method_hubhook_overrides_is_in_the_registry(mixin):
    # Given a mixin hubhook puts over RQ's SimpleWorker
    registered = {entry.name for entry in written_against.RQ_ENTRIES}
    # When its methods that RQ's worker also defines are listed with the RQ class that defines them
    overridden = []
    for name in vars(mixin):
        if inspect.isfunction(getattr(SimpleWorker, name, None)):
            owner = next(c for c in SimpleWorker.__mro__ if name in vars(c))
            overridden.append(f"{owner.__module__}:{owner.__qualname__}.{name}")
    # Then each is pinned by the tripwire
    assert overridden or mixin is BookkeepingMixin
    assert sorted(set(overridden) - registered) == []


def test_the_fast_paths_run_on_the_tested_rq_and_the_stock_ones_when_switched_off(config):
    # Given the suite's RQ, the one the fast paths were written against
    import rq
    assert rq.__version__ == private_apis.TESTED_RQ_VERSION
    # When the fast paths are on, the worker and the encoder are the fast ones
    on = replace(config, fast_paths=True)
    assert isinstance(build_worker(on, Router()), HubhookWorker)
    assert json_identity.encode is not json_identity.stock_encode
    # And with HUBHOOK_FAST_PATHS=0 they are RQ's and CPython's stock ones
    off = replace(config, fast_paths=False)
    worker = build_worker(off, Router())
    assert type(worker) is StockHubhookWorker
    assert not isinstance(worker, (LeanMixin, RecoveryMixin))
    assert json_identity.encode is json_identity.stock_encode
    build_worker(config, Router())  # back to the suite's own setting


def test_an_rq_version_that_was_not_tested_means_the_stock_paths_and_one_warning(caplog):
    # Given an RQ release other than the tested one
    untested = "3.1.0"
    # When hubhook asks twice whether it was tested
    with caplog.at_level(logging.WARNING, logger="hubhook"):
        answers = [private_apis.rq_tested(untested), private_apis.rq_tested(untested)]
    # Then it was not, and one warning (at most, per process) names both versions
    assert answers == [False, False]
    assert private_apis.rq_tested(private_apis.TESTED_RQ_VERSION)
    warned = [r.getMessage() for r in caplog.records if "fast paths" in r.getMessage()]
    assert len(warned) <= 1 and all(untested in m and private_apis.TESTED_RQ_VERSION in m for m in warned)


@pytest.mark.parametrize("raw, expected", [("0", False), ("off", False), ("false", False), ("1", True),
                                           ("yes", True), ("", True)])
def test_hubhook_fast_paths_is_read_from_the_environment(raw, expected):
    assert Config.from_env({"HUBHOOK_FAST_PATHS": raw}).fast_paths is expected


def test_a_bad_hubhook_fast_paths_names_the_setting():
    with pytest.raises(ConfigError, match="HUBHOOK_FAST_PATHS"):
        Config.from_env({"HUBHOOK_FAST_PATHS": "maybe"})


def _job_as_stored(redis, job_id: str) -> dict:
    """The job's hash as RQ stored it, without what differs between any two enqueues (times, id)."""
    stored = {k.decode(): v for k, v in redis.hgetall(f"rq:job:{job_id}").items()}
    return {k: v for k, v in stored.items() if k not in ("created_at", "enqueued_at", "last_heartbeat")}


def test_both_intake_paths_write_the_same_job_and_drop_the_same_redelivery(config, redis):
    # Given one delivery, taken in once by the fast intake and once by the stock one
    events = [make_event("contact.creation", 1), make_event("contact.propertyChange", 2, property="email")]
    written = {}
    for fast in (True, False):
        redis.flushall()
        queue = build_queue(replace(config, fast_paths=fast), redis)
        first = enqueue_delivery(redis, queue, events)
        again = enqueue_delivery(redis, queue, [{**e, "attemptNumber": 1} for e in events])
        # Then each enqueued the job once and dropped HubSpot's retry of it
        assert (first.enqueued, again.enqueued, again.job_id) == (2, 0, None)
        assert queue.job_ids == [first.job_id]
        assert int(redis.get("hubhook:pending_events")) == 2
        job = _job_as_stored(redis, first.job_id)
        # (a live worker's scheduler elsewhere may write rq:scheduler* keys: not the intake's)
        written[fast] = ({k.decode().replace(first.job_id, "ID") for k in redis.keys("*")
                          if not k.startswith(b"rq:scheduler")},
                         {k: v for k, v in job.items()})
    # And both wrote the same keys and the same job
    assert written[True] == written[False]
    build_queue(config, redis)  # back to the suite's own setting


def test_the_stock_intake_writes_nothing_when_throttled(config, redis):
    # Given the stock intake and a pending limit already reached
    queue = build_queue(replace(config, fast_paths=False), redis)
    enqueue_delivery(redis, queue, [make_event("contact.creation", 1)])
    # When another delivery comes
    refused = enqueue_delivery(redis, queue, [make_event("contact.creation", 2)], max_pending=1)
    # Then neither a job nor its digests were written
    assert refused.throttled and queue.count == 1
    assert enqueue_delivery(redis, queue, [make_event("contact.creation", 2)]).enqueued == 1
    build_queue(config, redis)


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_json_like = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@pytest.mark.skipif(json_identity.fast_encoder() is None, reason="this Python has no tested C encoder")
@settings(max_examples=300, deadline=None)
@given(st.lists(_json_like, max_size=6))
def test_the_encoder_built_once_gives_the_stock_encoders_bytes(value):
    # Given any JSON-like list (what the digest encodes: field names, or an event's values)
    fast = json_identity.fast_encoder()
    assert fast is not None
    # Then the encoder built once from c_make_encoder and the stock JSONEncoder.encode agree, byte for byte
    expected = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    assert json_identity.stock_encode(value) == expected
    assert fast(value) == expected


def test_the_lanes_rely_on_rqs_queue_list_and_its_workers_by_queue_set(config, redis):
    """``webhook_service.lanes`` moves job ids in and out of RQ's queue, a Redis list, and sizes it by the
    live workers in RQ's workers-by-queue set: both RQ internals, so an RQ that changes either fails here."""
    from webhook_service import lanes

    # Given a delivery enqueued the stock way and a worker of the queue that registered its birth
    queue = build_queue(config, redis)
    result = enqueue_delivery(redis, queue, [make_event("contact.creation", 1)], fair=False)
    worker = SimpleWorker([queue], connection=redis)
    worker.register_birth()
    try:
        # Then the queue is a list holding the job id, and the set lanes reads names the worker
        assert redis.type(queue.key) == b"list"
        assert result.job_id is not None and result.job_id.encode() in redis.lrange(queue.key, 0, -1)
        assert worker.key.encode() in redis.smembers(lanes._workers_key(queue))
    finally:
        worker.register_death()
