"""Every Redis key name hubhook writes and every dotted path it stores in a job or starts, in one place.

The receiver (``webhook_service``) and the worker and poller (``jobs``) meet only in Redis: the receiver
writes what the jobs read, and a job names its function as text. So each name is spelled once, here,
and both sides import it; ``webhook_service`` reaches ``jobs`` only through the dotted paths below
(``load``), never by importing it. Every value is a wire format: Redis data and jobs queued by an
earlier release must keep working after an upgrade, so a value never changes (``tests/test_keys.py``
pins them); only a hash tag in ``RQ_KEY_PREFIX`` (Redis Cluster) puts one in front of them all. Each
entry says what lives there and which module sets its TTL ("no TTL": kept until
deleted). Keys hold ids, names and digests only, never a secret.
"""
from __future__ import annotations

import importlib
import os
import re
from typing import Any

#: RQ's key prefix, read from the environment the way ``rq.defaults`` reads it when RQ is imported (not
#: imported here: this module is loaded before gunicorn's gevent patching, which must precede RQ's imports).
RQ_KEY_PREFIX = os.environ.get("RQ_KEY_PREFIX", "rq")


def hash_tag(prefix: str) -> str | None:
    """The Redis Cluster hash tag in ``prefix`` (the text inside its first non-empty ``{...}``), or None.

    https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/ (hash tags): only that
    part of a key picks its slot, so keys sharing the tag share a slot."""
    match = re.search(r"\{([^{}]+)\}", prefix)
    return match.group(1) if match else None


#: RQ_KEY_PREFIX's hash tag (RQ reads the variable itself, at import): with one, hubhook's keys carry it
#: too, so every key hubhook and RQ write lands in one Redis Cluster slot.
HASH_TAG = hash_tag(RQ_KEY_PREFIX)
PREFIX = f"{{{HASH_TAG}}}:hubhook" if HASH_TAG else "hubhook"


def key(*parts: object, prefix: str = PREFIX) -> str:
    """A hubhook Redis key: ``key("stats")`` -> ``hubhook:stats``. Never put a secret in one."""
    return ":".join((prefix, *map(str, parts)))


# -- the receiver's intake and the pending-events counter -------------------------------------------------

def pending_events(prefix: str = PREFIX) -> str:
    """Accepted events not yet processed (string counter, no TTL; ``webhook_service.telemetry.backlog``)."""
    return key("pending_events", prefix=prefix)


#: ``pending_events()`` under hubhook's prefix: what back-pressure compares to HUBHOOK_MAX_QUEUE_DEPTH.
PENDING_EVENTS = pending_events()


def seen_prefix(dedupe_ttl: int, prefix: str = PREFIX) -> str:
    """Seen-sets of event digests, one per TTL, the time bucket appended (sets; TTL set by the intake
    script, ``webhook_service.receiver.intake``)."""
    return f"{key('seen', dedupe_ttl, prefix=prefix)}:"


# -- per-portal lanes (``webhook_service.lanes``) -----------------------------------------------------------

#: Portals whose lane holds jobs, in the order the next free worker serves them, a list (no TTL).
LANES = key("lanes")
#: Portals an operator paused (``hubhook portal pause``), a set (no TTL).
LANES_PAUSED = key("lanes", "paused")


def pending_by_portal(prefix: str = PREFIX) -> str:
    """Events accepted and not yet processed, per portal, a hash portal -> count (no TTL; raised by
    ``webhook_service.receiver.intake``, lowered by ``webhook_service.telemetry.backlog``)."""
    return key("pending_events", "portals", prefix=prefix)


#: ``pending_by_portal()`` under hubhook's prefix: what HUBHOOK_MAX_PORTAL_DEPTH is compared to.
PENDING_BY_PORTAL = pending_by_portal()


def lane(portal: int | str, prefix: str = PREFIX) -> str:
    """One portal's waiting delivery jobs, ids oldest first, a list (no TTL; ``webhook_service.lanes``)."""
    return key("lane", portal, prefix=prefix)


# -- telemetry --------------------------------------------------------------------------------------------

#: Counters and histograms of every process, one hash (no TTL; ``webhook_service.telemetry.stats``).
STATS = key("stats")


def history(object_type: str, object_id: str | int) -> str:
    """The last changes of one object, a list; ``object_type`` is the singular name (``deal``)
    (TTL HUBHOOK_HISTORY_TTL, set by ``webhook_service.telemetry.object_history``)."""
    return key("history", object_type, object_id)


# -- the worker -------------------------------------------------------------------------------------------

def lock(name: str) -> str:
    """A lock a handler takes with ``event.lock(name)`` (timeout: the caller's; ``jobs.worker.context``)."""
    return key("lock", name)


#: Running batches' claims, a sorted set scored by lease expiry (no TTL; ``jobs.delivery.batching``).
COALESCE_LEASES = key("coalesce", "leases")


def coalesce_claim(claim_id: str) -> str:
    """Deliveries one batch took off the queue, a list (gone with its lease; ``jobs.delivery.batching``)."""
    return key("coalesce", "claim", claim_id)


def coalesce_solo(job_id: str) -> str:
    """A delivery that must run alone after its batch failed (TTL SOLO_TTL; ``jobs.delivery.batching``)."""
    return key("coalesce", "solo", job_id)


# -- the HubSpot client's shared rate budget ---------------------------------------------------------------

#: Prefix of the rate budget (``jobs.hubspot.rate_budget``); under it the ``limits`` library keeps its
#: moving windows, ``<RATE>:LIMITER/<window>/<scope>`` (TTL set by ``limits``).
RATE = key("rate")
#: The burst windows, one per scope (portal id or "app"): ``RATE_BURST_WINDOWS + scope``.
RATE_BURST_WINDOWS = f"{RATE}:LIMITER/burst/"


def rate_learned(scope: str, prefix: str = RATE) -> str:
    """The burst budget HubSpot's headers announced for ``scope`` (TTL LEARNED_TTL;
    ``jobs.hubspot.rate_budget``)."""
    return f"{prefix}:learned:{scope}"


def rate_pause(scope: str, *, search: bool = False, prefix: str = RATE) -> str:
    """``scope`` is paused after a 429 (its search budget alone with ``search``); TTL the pause length
    (``jobs.hubspot.rate_budget``)."""
    return f"{prefix}:pause:{scope}:search" if search else f"{prefix}:pause:{scope}"


# -- the poller -------------------------------------------------------------------------------------------

#: The poller leader's lock (TTL the lease, renewed by its holder; ``jobs.poller.leader``).
POLLER_LEADER = key("poller", "leader")
#: ``scan_iter`` match of every cursor (``jobs.poller.main.status_rows``).
POLLER_CURSORS = key("poller", "cursor", "*")


def poller_cursor(portal: int | str, object_type: str, stream: str) -> str:
    """One stream's cursor, a hash (no TTL; ``jobs.poller.cursor``)."""
    return key("poller", "cursor", portal, object_type, stream)


def poller_seen(portal: int | str, object_type: str, kind: str) -> str:
    """Versions a stream already delivered (``kind``: "changes" or "archive"), a sorted set trimmed by
    ``jobs.poller.cursor``."""
    return key("poller", "seen", portal, object_type, kind)


def poller_webhook_notes(portal: int | str, object_type: str) -> str:
    """Changes webhooks delivered, so the poll skips them, a sorted set (TTL a few reconcile intervals;
    ``jobs.poller.reconcile``)."""
    return key("poller", "webhook", portal, object_type)


def poller_property_marks(portal: int | str, object_type: str) -> str:
    """Per object, the newest property-history time already turned into propertyChange events, a sorted
    set trimmed with the seen set (no TTL; ``jobs.poller.property_changes``)."""
    return key("poller", "props", portal, object_type)


#: Portals with webhook notes, a set (same TTL as the notes; ``jobs.poller.reconcile``).
POLLER_WEBHOOK_PORTALS = key("poller", "webhook", "portals")


# -- the Webhooks Journal reader ---------------------------------------------------------------------------

#: The active journal reader's lock (the poller's leadership model, its own key; ``jobs.journal.reader``).
JOURNAL_LEADER = key("journal", "leader")
#: The reader's offset and figures, a hash (no TTL; ``jobs.journal.reader``): never a token.
JOURNAL_STATE = key("journal", "state")


# -- OAuth ------------------------------------------------------------------------------------------------

#: Digests of install states already used, a sorted set (TTL STATE_TTL + 60 s;
#: ``webhook_service.oauth.flow``).
OAUTH_USED_STATES = key("oauth", "used-states")
#: Portals that installed the app, a set (no TTL; ``webhook_service.oauth.token_store``).
OAUTH_PORTALS = key("oauth", "portals")


def oauth_tokens(portal_id: int) -> str:
    """One portal's encrypted tokens (no TTL; ``webhook_service.oauth.token_store``)."""
    return key("oauth", "portal", int(portal_id))


def oauth_refresh_lock(portal_id: int) -> str:
    """Held by the one process refreshing a portal's tokens (timeout LOCK_TIMEOUT;
    ``webhook_service.oauth.token_store``)."""
    return key("oauth", "refresh", portal_id)


# -- the Postgres mirror ----------------------------------------------------------------------------------

#: The mirror's last failed write: a hash of ``at`` (epoch seconds), ``handler`` and ``error`` (one line, the
#: database URL's password never in it) (no TTL; ``jobs.mirror.handler``, read by ``hubhook mirror status``).
MIRROR_LAST_ERROR = key("mirror", "last_error")


def mirror_backfill_cursor(portal_id: int, object_type: str) -> str:
    """Where ``hubhook mirror backfill`` stopped for one portal and type: the list endpoint's ``after``
    (string; no TTL, deleted when the walk finishes; ``jobs.mirror.backfill``)."""
    return key("mirror", "backfill", portal_id, object_type)


# -- dotted paths: stored in queued jobs (RQ imports them by name), or started by the CLI ------------------

#: A delivery's job function (``jobs.delivery.job.process_delivery``), at the path the first release stored.
PROCESS_DELIVERY = "jobs.process.process_delivery"
#: A handler's retry job function (``jobs.delivery.job.run_handler``), at the path the first release stored.
RUN_HANDLER = "jobs.process.run_handler"
#: ``hubhook worker``: run an RQ worker until stopped.
WORKER_RUN = "jobs.worker.worker:run"
#: ``hubhook poll``: run the poller until stopped.
POLLER_RUN = "jobs.poller.main:run"
#: The poller's cursors as rows, for ``hubhook status`` and ``/metrics``.
POLLER_STATUS = "jobs.poller.main:status_rows"
#: The rate budget's use per scope, for ``hubhook status``.
RATE_STATUS = "jobs.hubspot.rate_budget:status_rows"
#: ``hubhook journal``: read the Webhooks Journal until stopped.
JOURNAL_RUN = "jobs.journal.reader:run"
#: The journal reader's state as one dict, for ``hubhook journal status``, ``hubhook status`` and ``/metrics``.
JOURNAL_STATUS = "jobs.journal.reader:status"
#: ``hubhook mirror status|check|backfill``: the mirror's operator commands.
MIRROR_STATUS = "jobs.mirror.status:status_rows"
MIRROR_CHECK = "jobs.mirror.check:check"
MIRROR_BACKFILL = "jobs.mirror.backfill:backfill"
#: Why a worker must not run a stored job (None when it is hubhook's), for ``hubhook replay``.
JOB_REFUSAL = "jobs.worker.allowlist:refusal"


def load(path: str) -> Any:
    """The object a ``module:attribute`` path names, imported now: how ``webhook_service`` calls into
    ``jobs`` without importing it (raises ImportError or AttributeError)."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
