"""The RQ worker ``hubhook worker`` runs, tuned so a killed worker's job runs again within 2 minutes.

RQ recovers a job whose worker died only in a maintenance pass, after the job's heartbeat expired
(RQ 3.0 defaults: a pass every 600 s, heartbeats of up to 90 s): up to 11.5 minutes. Here the
heartbeat of a running job lasts its timeout plus 15 s (a job past its timeout is killed anyway), an
idle worker wakes every 15 s, and maintenance runs every 15 s, so an abandoned job is requeued
within about ``job_timeout + 45`` seconds. Jobs run in the worker process (no fork per job: ~4 ms
instead of ~22 ms a job), with RQ's timeout still enforced by SIGALRM. Where RQ's own recovery
stalls when a worker dies at the wrong moment (its scheduler lock, its maintenance lock, a job
caught between dequeue and start, a re-run job's stale execution),
``webhook_service.private_apis.recovery`` retunes it. ``webhook_service.private_apis.lean_worker``
cuts the Redis round trips RQ spends around each job (so a job costs under 5 ms).
``jobs.worker.allowlist`` keeps Redis write access from being code execution: the worker runs
only hubhook's own job functions.

Those two override RQ's internals, so they run only on the RQ version they were written against
(``webhook_service.private_apis``); on another, or with ``HUBHOOK_FAST_PATHS=0``, the worker is
``StockHubhookWorker``: RQ's own SimpleWorker with hubhook's bookkeeping and allowlist.
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

from jobs.delivery import batching
from jobs.worker import allowlist, context, recording
from jobs.worker.accounting import BookkeepingMixin
from webhook_service import logs, private_apis
from webhook_service.config import Config
from webhook_service.private_apis.lean_worker import LeanMixin
from webhook_service.private_apis.recovery import RecoveryMixin
from webhook_service.router import Router

WORKER_TTL = 30
MAINTENANCE_INTERVAL = 15

log = logging.getLogger("hubhook.worker")


class HubhookMixin(BookkeepingMixin):
    """What every hubhook worker adds to RQ's, on the fast and the stock path alike: it runs only
    hubhook's own job functions (jobs.worker.allowlist), keeps its bookkeeping (jobs.worker.accounting)
    and recovers the deliveries a worker that died mid-batch had claimed."""

    job_class: type[allowlist.HubhookJob] = allowlist.HubhookJob

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """Run the job, or fail a job hubhook did not enqueue without running any of it.

        Checked before RQ touches the job's function or callbacks, so the fast path
        (webhook_service.private_apis.lean_worker) and RQ's own path are both covered; the refused job
        lands in the failed-job registry, not retried.
        """
        why = allowlist.refusal(job, self.job_class.functions)
        if why is None:
            return super().perform_job(job, queue, execution)
        allowlist.disarm(job)
        job.meta["refused"] = why  # `hubhook replay` leaves it parked (webhook_service.operator.dead_letters)
        job.save_meta()
        self.prepare_job_execution(job,  # type: ignore[attr-defined]
                                   remove_from_intermediate_queue=len(self.queues) == 1)
        job.started_at = job.ended_at = now()
        log.error("refused job %s: %s; it was not run and is in the failed-job registry (whoever wrote it "
                  "can write to Redis: see Redis security in docs/deployment.md)", job.id, why)
        self.handle_job_failure(job, queue, started_job_registry=queue.started_job_registry,
                                exc_string=f"Refused by hubhook: {why}; it was not run", execution=execution)
        recording.flush(self.connection, context.current().config.history_ttl)  # the refused-jobs figure
        self._refill()  # as after every job: the next one may wait in a portal's lane
        return False

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        batching.recover(self.connection, self.queues[0])  # claimed by a worker that died mid-batch


class HubhookWorker(HubhookMixin, RecoveryMixin, LeanMixin, SimpleWorker):  # type: ignore[misc]
    """SimpleWorker with short heartbeats, so abandoned jobs are found in seconds, not minutes
    (webhook_service.private_apis.recovery), and fewer Redis round trips per job
    (webhook_service.private_apis.lean_worker): the fast path, on the RQ version it was written against."""


class StockHubhookWorker(HubhookMixin, SimpleWorker):  # type: ignore[misc]
    """RQ's SimpleWorker as RQ ships it, plus what every hubhook worker adds (HubhookMixin): the
    stock path, for an RQ version the fast path was not tested with or ``HUBHOOK_FAST_PATHS=0``."""


def build_worker(config: Config, router: Router | None = None, *, name: str | None = None,
                 also_run: Iterable[str] = ()) -> SimpleWorker:
    """A worker on hubhook's queue with this process's context installed (handlers imported now):
    ``HubhookWorker`` when the fast paths are on (``webhook_service.private_apis``), else the stock one.

    ``also_run`` adds job functions beyond hubhook's own (a benchmark's no-op): code decides, not Redis.
    The config's secrets are registered for redaction here, whether or not logging was configured,
    because the worker writes handler errors into Redis (object history, failed jobs).
    """
    logs.add_secrets(config.secrets())
    ctx = context.configure(config, router)
    _ = ctx.router  # import the handlers before the first job: a bad module fails at start, not per job
    worker_class = HubhookWorker if private_apis.configure(config) else StockHubhookWorker
    return worker_class([ctx.queue], connection=ctx.redis, name=name, serializer=JSONSerializer,
                        job_class=allowlist.job_class(also_run),
                        worker_ttl=WORKER_TTL, maintenance_interval=MAINTENANCE_INTERVAL,
                        job_monitoring_interval=5)


def run(config: Config, router: Router | None = None, *, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or, with ``burst``, until the queue is empty); the scheduler runs Retry delays."""
    worker = build_worker(config, router, name=name)
    log.info("worker %s listening on queue %r", worker.name, config.queue_name)
    return worker.work(burst=burst, with_scheduler=True,
                       logging_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()))
