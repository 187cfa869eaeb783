"""Redis key names and job paths are a wire format: they are pinned here, so a rename fails a test.

Why: Redis data written by one release (cursors, seen-sets, OAuth tokens, the pending-events
counter) is read by the next, and a queued job names its function as text that RQ imports when a
worker takes it. Renaming any of them would strand data and fail queued jobs after an upgrade.
"""
import time
from dataclasses import replace

import pytest
from rq.utils import import_attribute

import jobs.delivery.job
from jobs.hubspot.rate_budget import RateGovernor
from jobs.poller.cursor import Cursor
from webhook_service import keys
from webhook_service.connection import queue as build_queue
from webhook_service.oauth.flow import TokenSet
from webhook_service.oauth.token_store import TokenStore
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import backlog
from webhook_service.testing import make_event


def test_key_names_keep_their_values():
    assert keys.PENDING_EVENTS == "hubhook:pending_events"
    assert keys.seen_prefix(3600) == "hubhook:seen:3600:"
    assert keys.STATS == "hubhook:stats"
    assert keys.history("deal", 7) == "hubhook:history:deal:7"
    assert keys.lock("sync") == "hubhook:lock:sync"
    assert keys.COALESCE_LEASES == "hubhook:coalesce:leases"
    assert keys.coalesce_claim("c1") == "hubhook:coalesce:claim:c1"
    assert keys.coalesce_solo("delivery-1") == "hubhook:coalesce:solo:delivery-1"
    assert keys.RATE == "hubhook:rate"
    assert keys.RATE_BURST_WINDOWS == "hubhook:rate:LIMITER/burst/"
    assert keys.rate_learned("app") == "hubhook:rate:learned:app"
    assert keys.rate_pause("62515") == "hubhook:rate:pause:62515"
    assert keys.rate_pause("62515", search=True) == "hubhook:rate:pause:62515:search"
    assert keys.POLLER_LEADER == "hubhook:poller:leader"
    assert keys.POLLER_CURSORS == "hubhook:poller:cursor:*"
    assert keys.poller_property_marks(0, "ticket") == "hubhook:poller:props:0:ticket"
    assert keys.poller_cursor(62515, "ticket", "search") == "hubhook:poller:cursor:62515:ticket:search"
    assert keys.poller_seen(62515, "ticket", "archive") == "hubhook:poller:seen:62515:ticket:archive"
    assert keys.poller_webhook_notes(62515, "deal") == "hubhook:poller:webhook:62515:deal"
    assert keys.POLLER_WEBHOOK_PORTALS == "hubhook:poller:webhook:portals"
    assert keys.OAUTH_USED_STATES == "hubhook:oauth:used-states"
    assert keys.OAUTH_PORTALS == "hubhook:oauth:portals"
    assert keys.oauth_tokens(4242) == "hubhook:oauth:portal:4242"
    assert keys.oauth_refresh_lock(4242) == "hubhook:oauth:refresh:4242"


def test_job_paths_keep_their_values_and_rq_resolves_them():
    # Jobs queued by an earlier release carry exactly these names
    assert keys.PROCESS_DELIVERY == "jobs.process.process_delivery"
    assert keys.RUN_HANDLER == "jobs.process.run_handler"
    # ... and RQ's own import of a stored name still finds the job functions
    assert import_attribute(keys.PROCESS_DELIVERY) is jobs.delivery.job.process_delivery
    assert import_attribute(keys.RUN_HANDLER) is jobs.delivery.job.run_handler


def test_every_dotted_path_loads():
    from jobs.hubspot import rate_budget
    from jobs.poller import main as poller
    from jobs.worker import allowlist, worker

    assert keys.load(keys.WORKER_RUN) is worker.run
    assert keys.load(keys.POLLER_RUN) is poller.run
    assert keys.load(keys.POLLER_STATUS) is poller.status_rows
    assert keys.load(keys.RATE_STATUS) is rate_budget.status_rows
    assert keys.load(keys.JOB_REFUSAL) is allowlist.refusal
    with pytest.raises(AttributeError):  # `poll_rows` reports "no poller" on these two
        keys.load("jobs.poller.main:no_such_function")
    with pytest.raises(ImportError):
        keys.load("jobs.no_such_module:run")


def test_modules_write_under_the_names_keys_gives(redis, config):
    # Given the modules that write keys, used as production uses them, on a real Redis
    governor = RateGovernor(redis)
    governor.acquire("62515")
    governor.pause("62515", 30, "SECONDLY", search=True)
    Cursor(redis, 62515, "ticket", "search").start(1_000)
    TokenStore(redis, replace(config, client_secrets=("a-client-secret",))).save(
        TokenSet(4242, "access", "refresh", time.time() + 1800))
    delivery = [make_event("deal.creation", object_id=7)]
    enqueue_delivery(redis, build_queue(config, redis), delivery, dedupe_ttl=3600)
    backlog.requeued(redis, 3)
    # Then each wrote under the name keys builds: the limits library's burst window included,
    # which `hubhook status` scans for
    written = {k.decode() for k in redis.keys("hubhook:*")}
    assert {keys.RATE_BURST_WINDOWS + "62515", keys.rate_pause("62515", search=True),
            keys.poller_cursor(62515, "ticket", "search"), keys.oauth_tokens(4242), keys.OAUTH_PORTALS,
            keys.PENDING_EVENTS} <= written
    assert any(name.startswith(keys.seen_prefix(3600)) for name in written)
    assert int(redis.get(keys.PENDING_EVENTS)) == 4  # the delivery's event, then the replayed three
