"""The worker's bookkeeping around each job: figures, object histories, the pending-events counter.

A mixin over RQ's worker hooks rather than code in the job functions, because only the worker knows
how a job ended for good: RQ decides after the job returns whether a failure is retried or parked.
So the counter behind back-pressure (``webhook_service.telemetry.backlog``) is decremented here, once per delivery job,
when it succeeded or failed with no retry left; and everything the job buffered (``jobs.worker.recording``)
is written after it in one pipeline: for a success, the MULTI that records it
(``webhook_service.private_apis.lean_worker``).
The failure text RQ stores with a failed job (its traceback, shown by rq-dashboard and ``hubhook
replay``) passes through the log redaction first: a handler's error may quote a token.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis.client import Pipeline
from redis.exceptions import RedisError
from rq.job import Job
from rq.queue import Queue

from jobs.delivery import fetching
from jobs.worker import context, recording
from jobs.worker.allowlist import JOB_FUNCTIONS
from webhook_service import lanes
from webhook_service.keys import PROCESS_DELIVERY, RUN_HANDLER
from webhook_service.logs import redact
from webhook_service.telemetry import backlog, object_history, stats
from webhook_service.telemetry.backlog import delivery_events

log = logging.getLogger("hubhook.worker")


def _function(job: Job) -> str:
    """The job function's short name, the ``function`` label of the jobs counter ("refused" for a job
    that is not hubhook's: a name written into Redis by someone else must not become a label)."""
    try:
        if job.func_name not in getattr(type(job), "functions", JOB_FUNCTIONS):
            return "refused"
        return (job.func_name or "unknown").rsplit(".", 1)[-1]
    except Exception:  # a job whose payload cannot be decoded
        return "unknown"


def _note_parked(job: Job) -> None:
    """Say in one log line which handler was parked and how to run it again, and tell each object's
    history (``hubhook inspect``) that its work went to the dead-letter registry."""
    try:
        if job.func_name == RUN_HANDLER:
            name, changes = job.args[0], job.args[1]
        elif job.func_name == PROCESS_DELIVERY:
            name, changes = "delivery", job.args[0]
        else:
            return
        if "refused" not in job.meta:  # a refused job has its own line (jobs.worker.worker)
            handler = job.func_name == RUN_HANDLER
            what = f"handler {name}" if handler else "delivery"
            replay = f"hubhook replay --handler {name}" if handler else "hubhook replay"
            log.warning("%s for %s parked in the dead-letter registry, its retries spent (job %s); fix the "
                        "cause, then `%s`", what, job.meta.get("object") or f"{len(changes)} events",
                        job.id, replay)
        for item in fetching.group_changes(changes):
            object_history.add(item.object_type, item.object_id, {"kind": "parked", "handler": name,
                                                           "portal": item.portal_id, "job": job.id})
    except Exception:  # the history is a convenience: never let it disturb RQ's own bookkeeping
        log.debug("could not note parked job %s in the object history", job.id, exc_info=True)


class BookkeepingMixin:
    """Put before RQ's worker class: ``class HubhookWorker(BookkeepingMixin, SimpleWorker)``."""

    connection: Any
    queues: list[Queue]

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        try:
            return super().perform_job(job, queue, *args, **kwargs)  # type: ignore[misc]
        finally:
            recording.flush(self.connection, context.current().config.history_ttl)
            self._refill()

    def _refill(self) -> None:
        """Top RQ's queue up from the portals' lanes, in turn (``webhook_service.lanes``), before the
        next dequeue: after every job, and in every maintenance pass."""
        if context.current().config.fair_slice <= 0:
            return
        try:
            lanes.refill(self.connection, self.queues[0])
        except RedisError as exc:
            log.warning("could not refill the queue from the portals' lanes (%s); the next job or "
                        "maintenance pass tries again", type(exc).__name__)

    def handle_job_success(self, job: Job, *args: Any, **kwargs: Any) -> None:
        function = _function(job)
        # buffered first: webhook_service.private_apis.lean_worker writes it in RQ's MULTI
        stats.count("jobs", function=function, outcome="ok")
        try:
            super().handle_job_success(job, *args, **kwargs)  # type: ignore[misc]
        except BaseException:
            stats.count("jobs", -1, function=function, outcome="ok")  # RQ counts the job as failed instead
            raise
        self._job_ended(job, "ok", counted=True)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None,
                           exc_string: str = "", execution: Any = None) -> None:
        final = not job.should_retry
        super().handle_job_failure(job, queue, started_job_registry,  # type: ignore[misc]
                                   redact(exc_string), execution)
        self._job_ended(job, "failed" if final else "retried")

    def handle_job_retry(self, job: Job, queue: Queue, retry: Any, *args: Any, **kwargs: Any) -> None:
        final = bool(job.number_of_retries and job.number_of_retries >= retry.max)
        super().handle_job_retry(job, queue, retry, *args, **kwargs)  # type: ignore[misc]
        self._job_ended(job, "failed" if final else "retried")

    def record_job(self, pipeline: Pipeline) -> Callable[[], None]:
        """Queue the job's buffered figures and object histories on the MULTI that records its success
        (the fast path's hook, ``webhook_service.private_apis.lean_worker``); the returned undo keeps
        the figures for the next write if that MULTI fails."""
        taken = recording.write(pipeline, context.current().config.history_ttl)
        return lambda: recording.put_back(taken)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[misc]
        self._refill()
        try:
            drift = backlog.reconcile(self.connection, self.queues[0])
        except RedisError as exc:
            log.warning("could not check the pending-events counter (%s)", type(exc).__name__)
            return
        if drift:
            log.info("pending-events counter reset to 0 (it read %d with nothing queued or running)", drift)

    def _job_ended(self, job: Job, outcome: str, *, counted: bool = False) -> None:
        if not counted:
            stats.count("jobs", function=_function(job), outcome=outcome)
        if outcome == "retried":
            return
        if outcome == "failed":
            _note_parked(job)
        events = delivery_events(job, outcome)
        if events:
            try:
                backlog.done(self.connection, events, lanes.portal_of(job.args[0]))
            except RedisError as exc:
                log.warning("could not update the pending-events counter (%s); it heals when the queue "
                            "empties", type(exc).__name__)
