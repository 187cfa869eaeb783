"""Every RQ, redis-py and CPython function hubhook overrides, copies or leans on, with a hash of the
source it was written against: the drift tripwire.

Each entry names the dependency's function (``module:Qualified.name``), the hubhook code that depends
on it, and what to re-check when its source changes. ``tests/test_private_apis.py`` hashes the
installed source of every entry and fails, naming the entry and the re-check, when one differs:
after an RQ upgrade the fast paths stay off at run time (``webhook_service.private_apis``) until
each changed entry was re-checked and its hash updated here. The hash covers the whole
``inspect.getsource`` text, so a changed docstring trips it too: a cheap re-read, never a silent miss.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Borrowed:
    """One function of a dependency that hubhook's code overrides, copies or relies on."""

    name: str       # "module:Qualified.name", e.g. "rq.worker.base:BaseWorker.heartbeat"
    sha256: str     # the first 16 hex digits of the sha256 of its source when hubhook's code was written
    used_by: str    # the hubhook code that depends on it
    recheck: str    # what to verify in the new source before updating the hash

    def resolve(self) -> object:
        """The function itself, in the installed version."""
        module, _, qualname = self.name.partition(":")
        found: object = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        return found.fget if isinstance(found, property) else found


def source_hash(obj: object) -> str:
    """The first 16 hex digits of the sha256 of ``obj``'s source."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def installed_hash(entry: Borrowed) -> str:
    """The hash of the installed source of ``entry``, or why there is none (gone, no source)."""
    try:
        return source_hash(entry.resolve())
    except (ImportError, AttributeError) as exc:
        return f"missing ({type(exc).__name__}: {exc})"
    except (OSError, TypeError) as exc:
        return f"no source ({type(exc).__name__})"


def changed(entries: Iterable[Borrowed]) -> list[Borrowed]:
    """The entries whose installed source is not the one hubhook's code was written against."""
    return [entry for entry in entries if installed_hash(entry) != entry.sha256]


_LEAN = "webhook_service.private_apis.lean_worker.LeanMixin"
_RECOVERY = "webhook_service.private_apis.recovery"
_WORKER = "jobs.worker.worker.HubhookMixin"
_BOOKKEEPING = "jobs.worker.accounting.BookkeepingMixin"
_ENQUEUE = "webhook_service.private_apis.rq_enqueue.enqueue_commands"
_JSON = "webhook_service.private_apis.json_identity"

#: The fast worker path (LeanMixin): overridden methods and what ``_delete_finished`` copies.
LEAN_WORKER = (
    Borrowed("rq.worker.base:BaseWorker.heartbeat", "63b1089fd146d19c",
             f"{_LEAN}.heartbeat",
             "it still takes (timeout, pipeline), writes only the worker key's fields and TTL, and a skipped "
             "standalone heartbeat (at most HEARTBEAT_EVERY s) still leaves the key alive"),
    Borrowed("rq.worker.base:BaseWorker.set_state", "bb8d4f1d93ff078b",
             f"{_LEAN}.set_state",
             "it only writes the state field (skipping a write Redis already holds changes nothing)"),
    Borrowed("rq.worker.base:BaseWorker.check_for_suspension", "e8095ae1fcf966bd",
             f"{_LEAN}.check_for_suspension",
             "checking it at most once a second is still safe (it only reads the suspension key)"),
    Borrowed("rq.worker.base:BaseWorker.handle_execution_ended", "23748b027980a6cd",
             f"{_LEAN}.handle_execution_ended",
             "it still only dates ended_at and the job's heartbeat, needed only by callbacks"),
    Borrowed("rq.worker.base:BaseWorker.cleanup_execution", "4aef566a7d19eff1",
             f"{_LEAN}.cleanup_execution",
             "every job outcome still passes here with the pipeline that records it"),
    Borrowed("rq.worker.base:BaseWorker.handle_job_success", "9dda7c7d3ca18ee6",
             f"{_LEAN}.handle_job_success",
             "_delete_finished still writes what this writes for result_ttl=0 without repeats, group, rate "
             "limit or dependents; the conditions that send a job to RQ's path are complete"),
    Borrowed("rq.worker.base:BaseWorker.increment_successful_job_count", "077c6bb479dce619",
             f"{_LEAN}._delete_finished",
             "it still queues its writes on the pipeline it is given"),
    Borrowed("rq.worker.base:BaseWorker.increment_total_working_time", "91a9441e7a19ed62",
             f"{_LEAN}._delete_finished",
             "it still queues its writes on the pipeline it is given"),
    Borrowed("rq.worker.worker_classes:SimpleWorker.execute_job", "eae0f23110aeb280",
             f"{_LEAN}.cleanup_execution",
             "the in-memory state still turns idle only after perform_job returns"),
    Borrowed("rq.job:Job.cleanup", "16734aeb1eeab579",
             f"{_LEAN}._delete_finished",
             "with ttl 0 it still deletes the job (Job.delete) and nothing else"),
    Borrowed("rq.job:Job.delete", "1a15005871aa9579",
             f"{_LEAN}._delete_finished",
             "_delete_finished deletes the same keys: the job, its dependents, dependencies, result, "
             "executions and registry entries"),
    Borrowed("rq.job:Job._remove_from_registries", "53ca8ad3a8438edb",
             f"{_LEAN}._delete_finished",
             "a finished job is still only in the started registry (removed by cleanup_execution)"),
    Borrowed("rq.executions:ExecutionRegistry.delete", "dda35779303b2d0c",
             f"{_LEAN}._delete_finished",
             "executions are still a hash per id plus the job's sorted set of ids and the started registry's "
             "'<job id>:<execution id>' members"),
)

#: The recovery passes (RecoveryMixin, maintain, fail_stranded_dequeues, the scheduler lock).
RECOVERY = (
    Borrowed("rq.worker.base:BaseWorker.get_heartbeat_ttl", "8878c9689380486b",
             f"{_RECOVERY}.RecoveryMixin.get_heartbeat_ttl",
             "the heartbeat TTL of a running job is still computed here, from the job's timeout"),
    Borrowed("rq.worker.worker_classes:SimpleWorker.get_heartbeat_ttl", "f83449c2eebaacb1",
             f"{_RECOVERY}.RecoveryMixin.get_heartbeat_ttl",
             "as BaseWorker.get_heartbeat_ttl"),
    Borrowed("rq.worker.base:BaseWorker.clean_registries", "e2c9790c8156c72c",
             f"{_RECOVERY}.RecoveryMixin.clean_registries",
             "maintain still does what this does per queue (registries, worker registry, intermediate queue) "
             "under the maintenance lock"),
    Borrowed("rq.worker.base:BaseWorker.run_maintenance_tasks", "3d8a446b5354fce3",
             f"{_RECOVERY}.RecoveryMixin.run_maintenance_tasks, {_WORKER}.run_maintenance_tasks, "
             f"{_BOOKKEEPING}.run_maintenance_tasks",
             "it still calls clean_registries and is safe to extend"),
    Borrowed("rq.registry:clean_registries", "b6c52325526ac8b4",
             f"{_RECOVERY}.maintain",
             "its signature (queue, exc_handlers)"),
    Borrowed("rq.worker_registration:clean_worker_registry", "4e48a0d48857089d",
             f"{_RECOVERY}.maintain",
             "its signature (queue)"),
    Borrowed("rq.queue:Queue.acquire_maintenance_lock", "ebdce3e6d60ef394",
             f"{_RECOVERY}.maintain",
             "the lock is still a SET NX on registry_cleaning_key (maintain takes it with a 30 s TTL)"),
    Borrowed("rq.queue:Queue.release_maintenance_lock", "f7543e511d8eddb0",
             f"{_RECOVERY}.maintain",
             "it still deletes registry_cleaning_key"),
    Borrowed("rq.intermediate_queue:IntermediateQueue.cleanup", "e465aaeb5d294870",
             f"{_RECOVERY}.fail_stranded_dequeues",
             "fail_stranded_dequeues still does what this does, only after 10 s instead of 60"),
    Borrowed("rq.intermediate_queue:IntermediateQueue.set_first_seen", "5d6c47cca818dc69",
             f"{_RECOVERY}.fail_stranded_dequeues",
             "it still returns True only when it saw the job for the first time"),
    Borrowed("rq.intermediate_queue:IntermediateQueue.get_first_seen", "9e0c1dfb01455f3f",
             f"{_RECOVERY}.fail_stranded_dequeues",
             "it still returns an aware datetime comparable with rq.utils.now()"),
    Borrowed("rq.scheduler:RQScheduler.acquire_locks", "4d15324e1639d356",
             f"{_RECOVERY}.release_dead_scheduler_locks",
             "the lock's TTL is still the interval + 60 (SCHEDULER_LOCK_TTL) and it is a plain key"),
    Borrowed("rq.scheduler:RQScheduler.heartbeat", "8bf3e1cfc0a2839d",
             f"{_RECOVERY}.release_dead_scheduler_locks",
             "a live scheduler still refreshes its locks every interval (1 s), and stops when one is taken "
             "from it"),
    Borrowed("rq.scheduler:RQScheduler.get_locking_key", "6898002bcf1cacf2",
             f"{_RECOVERY}.release_dead_scheduler_locks",
             "the key of a queue's scheduler lock"),
    Borrowed("rq.job:Job.execution_registry", "f427c9420013ffb5",
             f"{_RECOVERY}.forget_lost_executions",
             "a job's executions are still listed in a sorted set of ids, each a hash of its own"),
)

#: hubhook's own worker methods over RQ's, on the fast and the stock path alike.
BOTH_WORKER_PATHS = (
    Borrowed("rq.worker.base:BaseWorker.perform_job", "1f0e40678ae519cf",
             f"{_WORKER}.perform_job, {_BOOKKEEPING}.perform_job",
             "it is still the first place a job's function and callbacks are touched"),
    Borrowed("rq.worker.base:BaseWorker.prepare_job_execution", "d08dd32962e3f82a",
             f"{_WORKER}.perform_job",
             "it still registers the job as started, so a refused job can be failed like a run one"),
    Borrowed("rq.worker.base:BaseWorker.handle_job_failure", "7432afe53b9f84ec",
             f"{_BOOKKEEPING}.handle_job_failure, {_WORKER}.perform_job, {_RECOVERY}.fail_stranded_dequeues",
             "its signature (job, queue, started_job_registry, exc_string, execution) and that "
             "job.should_retry before it still says whether it retries"),
    Borrowed("rq.worker.base:BaseWorker.handle_job_retry", "541a1b09523069c2",
             f"{_BOOKKEEPING}.handle_job_retry",
             "its signature (job, queue, retry, ...) and how it counts number_of_retries"),
)

#: The intake's replay of RQ's enqueue (rq_enqueue), and the redis-py pipeline it records on.
INTAKE = (
    Borrowed("rq.queue:Queue.enqueue_job", "05ff025c22a03128",
             f"{_ENQUEUE}",
             "for a job without dependencies or rate limit it only queues writes on the given pipeline: no "
             "read, no WATCH, nothing sent on the connection"),
    Borrowed("rq.queue:Queue._enqueue_job", "7f2d41e2157c2aa6",
             f"{_ENQUEUE}",
             "as Queue.enqueue_job"),
    Borrowed("rq.queue:Queue.setup_dependencies", "870dcd5fb958811a",
             f"{_ENQUEUE}",
             "with no dependencies it still reads nothing and writes nothing"),
    Borrowed("rq.job:Job.save", "94a90064c8986113",
             f"{_ENQUEUE}",
             "it still only queues writes on the given pipeline"),
    Borrowed("redis.client:Pipeline.pipeline_execute_command", "9e0af977d85b9cdb",
             f"{_ENQUEUE}",
             "a queued command still lands in command_stack as (args, options)"),
)

#: The event-identity encoder built once (json_identity).
JSON_ENTRIES = (
    Borrowed("json.encoder:JSONEncoder.iterencode", "0a9b6ccb5629e721",
             f"{_JSON}",
             "it still calls c_make_encoder(markers, default, encoder, indent, key_separator, "
             "item_separator, sort_keys, skipkeys, allow_nan) and the encoder still takes (value, 0)"),
    Borrowed("json.encoder:JSONEncoder.encode", "71131fc271e57ca2",
             f"{_JSON}",
             "the stock path: it still joins iterencode's chunks (the same bytes as the built-once one)"),
)

RQ_ENTRIES = LEAN_WORKER + RECOVERY + BOTH_WORKER_PATHS + INTAKE
ENTRIES = RQ_ENTRIES + JSON_ENTRIES
