"""The RQ worker ``hubhook worker`` runs, tuned so a killed worker's job runs again within 2 minutes.

RQ recovers a job whose worker died only in a maintenance pass, after the job's heartbeat expired
(RQ 3.0 defaults: a pass every 600 s, heartbeats of up to 90 s): up to 11.5 minutes. Here the heartbeat of a
running job lasts its timeout plus 15 s (a job past its timeout is killed anyway), an idle worker
wakes every 15 s, and maintenance runs every 15 s, so an abandoned job is requeued within about
``job_timeout + 45`` seconds. Jobs run in the worker process (no fork per job: ~4 ms instead of ~22 ms
a job), with RQ's timeout still enforced by SIGALRM. Where RQ's own recovery stalls when a worker
dies at the wrong moment (its scheduler lock, its maintenance lock, a job caught between dequeue and
start, a re-run job's stale execution), ``webhook_service.rq_internals.recovery`` retunes it. ``webhook_service.rq_internals.lean_worker`` cuts the Redis round
trips RQ spends around each job (so a job costs under 5 ms). ``jobs.worker.allowlist`` keeps Redis write access from
being code execution: the worker runs only hubhook's own job functions.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import SimpleWorker

from webhook_service import logs
from webhook_service.config import Config
from webhook_service.router import Router

from jobs.delivery import batching
from jobs.worker import context
from jobs.worker import recording
from webhook_service.rq_internals import recovery
from jobs.worker import allowlist
from jobs.worker.accounting import BookkeepingMixin
from webhook_service.rq_internals.lean_worker import LeanMixin

HEARTBEAT_GRACE = 15
WORKER_TTL = 30
MAINTENANCE_INTERVAL = 15

log = logging.getLogger("hubhook.worker")


class HubhookWorker(BookkeepingMixin, LeanMixin, SimpleWorker):
    """SimpleWorker with short heartbeats, so abandoned jobs are found in seconds, not minutes, and
    fewer Redis round trips per job (webhook_service.rq_internals.lean_worker), that runs only hubhook's own job functions (jobs.worker.allowlist)."""

    job_class: type[allowlist.HubhookJob] = allowlist.HubhookJob

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """Run the job, or fail a job hubhook did not enqueue without running any of it.

        Checked before RQ touches the job's function or callbacks, so the fast path (webhook_service.rq_internals.lean_worker) and
        RQ's own path are both covered; the refused job lands in the failed-job registry, not retried.
        """
        why = allowlist.refusal(job, self.job_class.functions)
        if why is None:
            return super().perform_job(job, queue, execution)
        allowlist.disarm(job)
        job.meta["refused"] = why  # `hubhook replay` leaves it parked (webhook_service.operator.dead_letters)
        job.save_meta()
        self.prepare_job_execution(job, remove_from_intermediate_queue=len(self.queues) == 1)
        job.started_at = job.ended_at = now()
        log.error("refused job %s: %s; it was not run and is in the failed-job registry (whoever wrote it "
                  "can write to Redis: see the README's Redis security)", job.id, why)
        self.handle_job_failure(job, queue, started_job_registry=queue.started_job_registry,
                                exc_string=f"Refused by hubhook: {why}; it was not run", execution=execution)
        recording.flush(self.connection, context.current().config.history_ttl)  # the refused-jobs figure
        return False

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout is None or job.timeout < 0:
            return super().get_heartbeat_ttl(job, working_time)
        return int(job.timeout) + HEARTBEAT_GRACE

    def clean_registries(self) -> None:
        """RQ's maintenance pass with hubhook's recovery timings (webhook_service.rq_internals.recovery)."""
        for queue in self.queues:
            if recovery.maintain(self, queue):
                self.log.info("Worker %s: cleaned registries for queue: %s", self.name, queue.name)
        self.last_cleaned_at = now()

    def run_maintenance_tasks(self) -> None:
        recovery.release_dead_scheduler_locks(self.connection, [q.name for q in self.queues])
        super().run_maintenance_tasks()
        batching.recover(self.connection, self.queues[0])  # deliveries claimed by a worker that died mid-batch


def build_worker(config: Config, router: Router | None = None, *, name: str | None = None,
                 also_run: Iterable[str] = ()) -> HubhookWorker:
    """A worker on hubhook's queue with this process's context installed (handlers imported now).

    ``also_run`` adds job functions beyond hubhook's own (a benchmark's no-op): code decides, not Redis.
    The config's secrets are registered for redaction here, whether or not logging was configured,
    because the worker writes handler errors into Redis (object history, failed jobs).
    """
    logs.add_secrets([*config.client_secrets, config.access_token])
    ctx = context.configure(config, router)
    ctx.router  # import the handlers before the first job: a bad module fails at start, not per job
    return HubhookWorker([ctx.queue], connection=ctx.redis, name=name, serializer=JSONSerializer,
                         job_class=allowlist.job_class(also_run),
                         worker_ttl=WORKER_TTL, maintenance_interval=MAINTENANCE_INTERVAL,
                         job_monitoring_interval=5)


def run(config: Config, router: Router | None = None, *, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or, with ``burst``, until the queue is empty); the scheduler runs Retry delays."""
    worker = build_worker(config, router, name=name)
    log.info("worker %s listening on queue %r", worker.name, config.queue_name)
    return worker.work(burst=burst, with_scheduler=True,
                       logging_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()))
