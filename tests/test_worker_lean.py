"""The worker's short path around each job (webhook_service.private_apis.lean_worker) leaves Redis as
RQ's own path would.

Why: webhook_service.private_apis.lean_worker replaces RQ's success handling for jobs whose result
is not kept (all of hubhook's), to save round trips. These tests pin what RQ would have done: nothing of a finished job
left behind, the worker's figures and state right, the job's figures and histories written, and a
job with dependents still handed to RQ so its dependents run.
"""
from __future__ import annotations

import dataclasses

from rq import Queue
from rq.serializers import JSONSerializer

from jobs.worker.worker import build_worker
from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import object_history, stats
from webhook_service.testing import make_event

from .conftest import fast_paths_only


@fast_paths_only  # RQ 3.0's own success path fails a job whose execution list holds a dead execution
def test_finished_deliveries_leave_no_job_execution_or_registry_entry(config, redis, hubspot):
    # Given three one-event deliveries (not coalesced), one with a dead execution of an earlier run listed
    config = dataclasses.replace(config, coalesce_max_events=1)
    calls = []
    router = Router()
    router.add(lambda event: calls.append(event.object_id), "contact.*", name="count")
    for object_id in (1, 2, 3):
        hubspot.add("contacts", object_id, {"email": f"{object_id}@example.com"})
    queue = build_queue(config, redis)
    ids = [enqueue_delivery(redis, queue, [make_event("contact.creation", i)]).job_id for i in (1, 2, 3)]
    redis.zadd(f"rq:executions:{ids[0]}", {"dead-execution": 9e9})
    # When a worker drains the queue
    worker = build_worker(config, router)
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    # Then every handler ran and nothing of the jobs is left, as with RQ's result_ttl=0
    assert sorted(calls) == ["1", "2", "3"]
    leftovers = [k.decode() for k in redis.keys("rq:*") if any(i in k.decode() for i in ids)]
    assert leftovers == []
    assert queue.started_job_registry.get_job_count(cleanup=False) == 0
    assert queue.failed_job_registry.get_job_count(cleanup=False) == 0
    assert not redis.exists(f"rq:worker:{worker.name}:executions")
    # And the worker's own figures, its state, the jobs counter and the histories are written
    assert int(redis.hget(worker.key, "successful_job_count")) == 3
    assert redis.hget(worker.key, "state") == b"idle"
    counted = stats.read(redis).series("jobs")
    assert counted[(("function", "process_delivery"), ("outcome", "ok"))] == 3
    assert [e["kind"] for e in object_history.read(redis, "contact", 2)] == ["seen", "handler"]

NOOP = "bench.handlers.noop"  # not one of hubhook's job functions: these workers are told to run it


def test_a_job_with_dependents_takes_rqs_path_and_its_dependent_runs(config, redis):
    # Given a no-op job on hubhook's queue and a second one that depends on it
    build_worker(config, Router())
    queue = Queue(build_queue(config, redis).name, connection=redis, serializer=JSONSerializer)
    first = queue.enqueue(NOOP, result_ttl=0)
    second = queue.enqueue(NOOP, depends_on=first, result_ttl=0)
    # When a worker drains the queue
    worker = build_worker(config, Router(), also_run=[NOOP])
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    # Then both ran and were deleted, the dependent after its dependency
    assert not redis.exists(first.key) and not redis.exists(second.key)
    assert queue.count == 0 and queue.deferred_job_registry.get_job_count(cleanup=False) == 0


def test_the_worker_stays_busy_until_a_finished_job_is_recorded(config, redis):
    # Given a worker that notes its in-memory state once a job's success is recorded (RQ's warm
    # shutdown raises at once in an idle worker: a SIGTERM there would fail the finished job)
    states = []
    worker = build_worker(config, Router(), also_run=[NOOP])

    class Probe(type(worker)):  # type: ignore[misc]  # HubhookWorker, or the stock one
        def handle_job_success(self, job, *args, **kwargs):
            super().handle_job_success(job, *args, **kwargs)
            states.append(self.get_state())

    worker.__class__ = Probe
    Queue(worker.queues[0].name, connection=redis, serializer=JSONSerializer).enqueue(NOOP,
                                                                                    result_ttl=0)
    # When it runs the job
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    # Then it was still busy then, and Redis says idle now
    assert states == ["busy"]
    assert redis.hget(worker.key, "state") == b"idle"
