"""The dead-letter registry: RQ's failed-job registry of hubhook's queue, read by handler name.

Work lands here only after its retries are spent: a handler that kept raising (``run_handler`` jobs,
tagged with the handler's name) or a delivery whose HubSpot reads kept failing (tagged "delivery").
RQ keeps the traceback with each job, rq-dashboard shows them unchanged, and ``replay`` requeues them
with their original arguments.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from webhook_service.config import Config

from .connection import queue as build_queue

DELIVERY = "delivery"


@dataclass(frozen=True)
class DeadLetter:
    """One parked piece of work."""

    job_id: str
    handler: str
    description: str
    failed_at: datetime | None
    error: str


def dead_letters(config: Config) -> list[DeadLetter]:
    """Everything parked, oldest first."""
    queue = build_queue(config)
    registry = FailedJobRegistry(queue=queue)
    letters = []
    for job_id in registry.get_job_ids():
        try:
            job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        error = ((job.latest_result().exc_string if job.latest_result() else "") or "").strip().splitlines()
        letters.append(DeadLetter(job_id, job.meta.get("handler", DELIVERY), job.description or "",
                                  job.ended_at, error[-1][:200] if error else ""))
    return sorted(letters, key=lambda d: d.failed_at or datetime.min.replace(tzinfo=timezone.utc))


def counts_by_handler(config: Config) -> Counter:
    """How many dead letters each handler has (``hubhook status``)."""
    return Counter(d.handler for d in dead_letters(config))


def replay(config: Config, *, handler: str | None = None, dry_run: bool = False) -> Iterator[str]:
    """Requeue the dead letters (of one handler); yield one line per job and a summary."""
    letters = dead_letters(config)
    chosen = [d for d in letters if handler is None or d.handler == handler]
    if not chosen:
        if handler and letters:
            names = ", ".join(sorted({d.handler for d in letters}))
            yield f"no dead letters for handler {handler!r}; there are dead letters for: {names}"
        else:
            yield "nothing to replay: the dead-letter registry is empty" + (f" for {handler!r}" if handler else "")
        return
    registry = FailedJobRegistry(queue=build_queue(config))
    for letter in chosen:
        if not dry_run:
            registry.requeue(letter.job_id)
        yield f"{'would replay' if dry_run else 'replayed'} {letter.job_id} [{letter.handler}] {letter.description}" \
              f" (last error: {letter.error or 'unknown'})"
    yield f"{len(chosen)} job(s) {'would be ' if dry_run else ''}requeued"
