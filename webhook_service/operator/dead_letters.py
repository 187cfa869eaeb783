"""The dead-letter registry: RQ's failed-job registry of hubhook's queue, read by handler name.

Work lands here only after its retries are spent: a handler that kept raising (``run_handler`` jobs,
tagged with the handler's name) or a delivery whose HubSpot reads kept failing (tagged "delivery").
RQ keeps the traceback with each job, rq-dashboard shows them unchanged, and ``replay`` requeues them
with their original arguments. A job a worker refused (its function is not hubhook's, ``jobs.worker.allowlist``)
is listed under "refused" and never requeued. Error texts are redacted when stored (``jobs.worker.accounting``);
the commands that print them pass them through ``logs.for_terminal``.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from webhook_service import keys, lanes
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.telemetry import backlog
from webhook_service.telemetry.backlog import delivery_events

DELIVERY = "delivery"
REFUSED = "refused"


@dataclass(frozen=True)
class DeadLetter:
    """One parked piece of work."""

    job_id: str
    handler: str
    description: str
    failed_at: datetime | None
    error: str
    events: int = 0          # events of a parked delivery (they count as pending again once replayed)
    portal: str | None = None  # the portal of a parked delivery's events (webhook_service.lanes)

    def age(self, now: datetime | None = None) -> float | None:
        """Seconds since it failed, or None when RQ did not record when."""
        if self.failed_at is None:
            return None
        failed = self.failed_at if self.failed_at.tzinfo else self.failed_at.replace(tzinfo=UTC)
        return ((now or datetime.now(UTC)) - failed).total_seconds()


def dead_letters(config: Config) -> list[DeadLetter]:
    """Everything parked, oldest first."""
    queue = build_queue(config)
    registry = FailedJobRegistry(queue=queue)
    letters = []
    refusal = keys.load(keys.JOB_REFUSAL)
    for job_id in registry.get_job_ids():
        try:
            job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        result = job.latest_result()
        error = ((result.exc_string if result else "") or "").strip().splitlines()
        refused = "refused" in job.meta or refusal(job) is not None
        handler = REFUSED if refused else str(job.meta.get("handler", DELIVERY))
        letters.append(DeadLetter(job_id, handler, "" if refused else job.description or "", job.ended_at,
                                  error[-1][:200] if error else "", 0 if refused else delivery_events(job),
                                  None if refused or not delivery_events(job) else lanes.portal_of(job.args[0])))
    return sorted(letters, key=lambda d: d.failed_at or datetime.min.replace(tzinfo=UTC))


def counts_by_handler(config: Config) -> Counter:
    """How many dead letters each handler has (``hubhook status``)."""
    return Counter(d.handler for d in dead_letters(config))


def replay(config: Config, *, handler: str | None = None, dry_run: bool = False, older_than: float | None = None,
           newer_than: float | None = None) -> Iterator[str]:
    """Requeue the dead letters (of one handler; failed more than ``older_than`` / less than ``newer_than``
    seconds ago); yield one line per job and a summary."""
    letters = dead_letters(config)
    chosen = [d for d in letters if (handler is None or d.handler == handler) and _in_age(d, older_than, newer_than)]
    if not chosen:
        if letters and (older_than is not None or newer_than is not None):
            ages = [a for a in (d.age() for d in letters) if a is not None]
            span = f" (they failed {_span(min(ages))} to {_span(max(ages))} ago)" if ages else ""
            yield f"nothing to replay in that age range; {len(letters)} dead letter(s) in all{span}"
        elif handler and letters:
            names = ", ".join(sorted({d.handler for d in letters}))
            yield f"no dead letters for handler {handler!r}; there are dead letters for: {names}"
        else:
            yield "nothing to replay: the dead-letter registry is empty" + (f" for {handler!r}" if handler else "")
        return
    queue = build_queue(config)
    registry = FailedJobRegistry(queue=queue)
    refused = [d for d in chosen if d.handler == REFUSED]
    chosen = [d for d in chosen if d.handler != REFUSED]
    for letter in refused:
        yield (f"skipped {letter.job_id}: a worker refused it because hubhook did not enqueue it "
               f"({letter.error}); find out who can write to Redis, then delete it from the failed-job "
               f"registry (rq-dashboard)")
    for letter in chosen:
        if not dry_run:
            registry.requeue(letter.job_id)
            backlog.requeued(queue.connection, letter.events, letter.portal)
        yield f"{'would replay' if dry_run else 'replayed'} {letter.job_id} [{letter.handler}] {letter.description}" \
              f" (last error: {letter.error or 'unknown'})"
    yield f"{len(chosen)} job(s) {'would be ' if dry_run else ''}requeued"


def _in_age(letter: DeadLetter, older_than: float | None, newer_than: float | None) -> bool:
    if older_than is None and newer_than is None:
        return True
    age = letter.age()
    if age is None:
        return False
    return (older_than is None or age >= older_than) and (newer_than is None or age <= newer_than)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
