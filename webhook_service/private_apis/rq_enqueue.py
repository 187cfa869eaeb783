"""The Redis commands ``Queue.enqueue_job`` would send for a job, recorded instead of sent.

The receiver's intake (``webhook_service.receiver.intake``) checks a delivery's digests and writes its
job in one Lua script, one round trip, atomically. For the job it writes exactly what RQ would have
saved (rq-dashboard and ``Job.fetch`` read it unchanged), because it does not write the job itself:
``Queue.enqueue_job`` runs against a redis-py pipeline that is never sent, and the script replays the
commands left on the pipeline's ``command_stack`` (a redis-py internal) verbatim.

This leans on two things neither library promises: that ``enqueue_job`` for a job with no
dependencies and no rate limit only queues writes on the pipeline it is given (no read, no WATCH,
nothing sent on the connection), and that a pipeline keeps its queued commands in ``command_stack``
as ``(args, options)``. ``written_against`` pins the sources this was written against; the intake's
stock path (``queue.enqueue_job`` itself, see ``enqueue_delivery``) needs neither.
"""
from __future__ import annotations

from redis import Redis
from rq.job import Job
from rq.queue import Queue


def enqueue_commands(connection: Redis, queue: Queue, job: Job) -> list:
    """The commands ``queue.enqueue_job(job)`` would send, flattened for the intake script: how many
    commands, then each one as its number of words followed by the words."""
    recorder = connection.pipeline(transaction=False)
    try:
        queue.enqueue_job(job, pipeline=recorder)
        commands = [args for args, _options in recorder.command_stack]
    finally:
        recorder.reset()
    flat: list = [len(commands)]
    for args in commands:
        flat.append(len(args))
        flat.extend(args)
    return flat
