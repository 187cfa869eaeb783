"""The only job functions a hubhook worker runs: write access to Redis must not be code execution.

An RQ job names its function as a dotted path stored in Redis, and RQ imports and calls whatever that
path names (``os.system`` included), plus any success, failure or stopped callback and HTTP webhook
the job carries. So anyone who can write to Redis could run code on every worker. A hubhook worker
runs only the functions hubhook itself enqueues (``JOB_FUNCTIONS``), with no instance, callback or
webhook; anything else fails at once, without being run, into the failed-job registry, with one log
line (``refusal`` says why). Job data is JSON (RQ's JSONSerializer, ``webhook_service.connection``), never a
pickle, so decoding a job runs no code either.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rq.job import Job

from webhook_service.keys import PROCESS_DELIVERY, RUN_HANDLER

#: Every function hubhook enqueues: deliveries (receiver, poller, hand-offs) and handler retries.
JOB_FUNCTIONS = frozenset({PROCESS_DELIVERY, RUN_HANDLER})


class RefusedJob(Exception):
    """A job names a function (or carries a callback) that is not one of hubhook's own."""


class HubhookJob(Job):
    """RQ's Job, resolving only the functions in ``functions``: a second guard behind the worker's
    check (``refusal``), at the one place RQ turns a stored name into a callable."""

    functions: frozenset[str] = JOB_FUNCTIONS

    @property
    def func(self) -> Any:
        why = refusal(self, self.functions)
        if why:
            raise RefusedJob(why)
        return super().func


def job_class(also_run: Iterable[str] = ()) -> type[HubhookJob]:
    """``HubhookJob``, or a subclass that also runs ``also_run`` (benchmarks' no-op jobs): chosen in code,
    never read from Redis or the environment."""
    extra = frozenset(also_run) - JOB_FUNCTIONS
    if not extra:
        return HubhookJob
    return type("HubhookJobWithExtras", (HubhookJob,), {"functions": JOB_FUNCTIONS | extra})


def refusal(job: Job, functions: frozenset[str] = JOB_FUNCTIONS) -> str | None:
    """Why the worker must not run ``job`` (one line naming what it asked for); None when it is hubhook's."""
    try:
        name, instance = job.func_name, job.instance
    except Exception as exc:  # a payload that is not hubhook's JSON: nothing of it may run
        return f"its payload cannot be decoded ({type(exc).__name__})"
    if name not in functions:
        known = ", ".join(sorted(functions))
        return f"its function {_shown(name)} is not one of hubhook's job functions ({known})"
    if instance is not None:
        return f"it calls {_shown(name)} on an object, and hubhook's job functions are plain functions"
    callbacks = [kind for kind in ("success", "failure", "stopped")
                 if getattr(job, f"_{kind}_callback_name", None)]
    if callbacks:
        return f"it carries a {' and a '.join(callbacks)} callback, and hubhook's jobs have none"
    if getattr(job, "webhooks", None):
        return "it carries RQ webhooks, and hubhook's jobs have none"
    return None


def disarm(job: Job) -> None:
    """Strip what RQ would act on when a refused job fails: retries, callbacks, webhooks."""
    job.retries_left = None
    job.retry_intervals = None
    for kind in ("success", "failure", "stopped"):
        setattr(job, f"_{kind}_callback_name", None)
        setattr(job, f"_{kind}_callback", None)
    job.webhooks = []


def _shown(name: object) -> str:
    """A stored name as it may appear in one log line: quoted, bounded, control characters escaped."""
    return repr(str(name)[:120])
