"""Fewer Redis round trips per job than RQ's SimpleWorker, to keep a job's overhead under 5 ms.

A no-op job cost RQ 3.0's SimpleWorker 27 round trips (bench/worker_overhead.py; ~0.2-0.3 ms each on a
shared box), and round trips, not Python, were most of its time. Most of them repeat what Redis
already knows or read what the worker already has in hand:

* Heartbeats: three a job of three commands each, for a worker key that lives 90 s. Here a
  standalone heartbeat goes out at most every HEARTBEAT_EVERY seconds, as one pipeline, and the
  end of every job carries one in the pipeline that records the job's outcome.
* Worker state: RQ writes ``idle`` twice after every job; here once, in that same pipeline (the
  in-memory state turns idle only when RQ's handling of the job is over, as in RQ).
* Suspension (``rq suspend``): checked at most once a second instead of before every job.
* ``job.heartbeat`` when execution ends only dates the job for its success or failure callback:
  hubhook's jobs have none, so it is written only for a job that has one.
* Success with ``result_ttl=0`` (every hubhook job): RQ's ``Job.delete`` reads the job's status and
  fetches every execution twice, one round trip each, before its MULTI. Here one pipelined read
  (dependents, execution ids) and one MULTI do the same deletes, with whatever the worker buffered
  about the job (``record_job``: hubhook's figures and object histories) in that MULTI. A job with
  dependents, repeats, a group, a rate limit or a kept result takes RQ's own path.

A dead execution left in the job's list (its worker was SIGKILLed) is deleted with the others here;
RQ's path cannot fetch it and fails the job after it succeeded, so before RQ's path
``webhook_service.private_apis.recovery.forget_lost_executions`` drops such ids.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis.client import Pipeline
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.results import Result
from rq.utils import as_text, now
from rq.worker import WorkerStatus

from webhook_service.private_apis import recovery

HEARTBEAT_EVERY = 5.0          # seconds between standalone heartbeats; the worker key lives worker_ttl + 60
SUSPENSION_CHECK_EVERY = 1.0   # seconds: how late a worker may notice `rq suspend`


def _nothing_to_undo() -> None:
    """``record_job``'s undo when nothing was taken."""


class LeanMixin:
    """Put between hubhook's mixins and RQ's class:
    ``HubhookWorker(HubhookMixin, RecoveryMixin, LeanMixin, SimpleWorker)``."""

    connection: Any
    name: str
    default_result_ttl: int
    log: Any
    log_job_description: bool
    key: str
    _state: str
    _written_state = ""
    _next_heartbeat = 0.0
    _next_suspension_check = 0.0

    def record_job(self, pipeline: Pipeline) -> Callable[[], None]:
        """Queue on ``pipeline`` (the MULTI that records a job's success) what the worker buffered about
        the job; return what undoes the taking if that MULTI fails. Nothing here: the worker class
        that buffers (``jobs.worker.accounting.BookkeepingMixin``) overrides it."""
        return _nothing_to_undo

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)  # type: ignore[misc]
        elif timeout is None and time.monotonic() < self._next_heartbeat:
            return  # the key was refreshed seconds ago and lives 90 s
        else:
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(timeout, pipe)  # type: ignore[misc]
                pipe.execute()
        if timeout is None:
            self._next_heartbeat = time.monotonic() + HEARTBEAT_EVERY

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == self._written_state:
            self._state = state  # Redis already says so: the job's last pipeline wrote idle
            return
        super().set_state(state, pipeline)  # type: ignore[misc]
        self._written_state = state

    def check_for_suspension(self, burst: bool) -> None:
        if time.monotonic() < self._next_suspension_check:
            return
        super().check_for_suspension(burst)  # type: ignore[misc]
        self._next_suspension_check = time.monotonic() + SUSPENSION_CHECK_EVERY

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if job.success_callback is not None or job.failure_callback is not None:
            super().handle_execution_ended(job, queue, heartbeat_ttl)  # type: ignore[misc]
            return
        job.ended_at = job.last_heartbeat = now()

    def cleanup_execution(self, job: Job, pipeline: Pipeline, execution: Execution | None = None) -> None:
        """RQ's cleanup, plus the worker's idle state and heartbeat: every job outcome passes here."""
        super().cleanup_execution(job, pipeline, execution)  # type: ignore[misc]
        if execution is not None:
            # Written only: in memory the worker stays busy until RQ's execute_job returns, because a
            # warm shutdown (SIGTERM) raises at once in an idle worker, here failing a finished job.
            pipeline.hset(self.key, "state", WorkerStatus.IDLE.value)
            self._written_state = WorkerStatus.IDLE.value
            self.heartbeat(pipeline=pipeline)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution) -> None:
        """RQ's success handling in two round trips instead of ten for a job whose result is not kept."""
        lean = (job.get_result_ttl(self.default_result_ttl) == 0 and not job.repeats_left and not job.group_id
                and not job.has_rate_limit)
        if lean:
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.smembers(job.dependents_key)
                pipe.zrange(job.execution_registry.key, 0, -1)
                dependents, execution_ids = pipe.execute()
            lean = not dependents  # hubhook enqueues no dependent jobs; RQ's path enqueues them
        if not lean:
            recovery.forget_lost_executions(job)
            super().handle_job_success(job, queue, started_job_registry, execution)  # type: ignore[misc]
            return
        self._delete_finished(job, execution, [as_text(i) for i in execution_ids])
        job._status = JobStatus.FINISHED
        # RQ types started_at/ended_at Optional; both are set before a job's success is handled
        if self.log_job_description:
            self.log.info('Successfully completed %s job in %ss on worker %s', job.description,
                          job.ended_at - job.started_at, self.name)  # type: ignore[operator]
        else:
            self.log.info('Successfully completed job %s in %ss on worker %s', job.id,
                          job.ended_at - job.started_at, self.name)  # type: ignore[operator]

    def _delete_finished(self, job: Job, execution: Execution, execution_ids: list[str]) -> None:
        """What RQ's success path writes for a job whose result is not kept, in one MULTI."""
        with self.connection.pipeline() as pipe:
            self.increment_successful_job_count(pipeline=pipe)  # type: ignore[attr-defined]
            self.increment_total_working_time(  # type: ignore[attr-defined]
                job.ended_at - job.started_at, pipe)  # type: ignore[operator]  # both set before success handling
            others = [i for i in execution_ids if i != execution.id]
            if others:  # executions of earlier runs (a killed worker's), alive or not: RQ's delete drops all
                pipe.zrem(job.started_job_registry.key, *(f"{job.id}:{i}" for i in others))
                pipe.delete(*(Execution(i, job.id, self.connection).key for i in others))
            self.cleanup_execution(job, pipe, execution)
            pipe.delete(job.key, job.dependents_key, job.dependencies_key, Result.get_key(job.id),
                        job.execution_registry.key)
            undo = self.record_job(pipe)
            try:
                pipe.execute()
            except BaseException:
                undo()
                raise
