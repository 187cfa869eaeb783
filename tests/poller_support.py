"""Fixtures and helpers shared by the poller's tests (test_poller*.py import them by name).

The fake's own 5/s search limit is off and the client's budget raised, so walks of tens of thousands
of records take seconds; the one test about 429s scripts them explicitly.
"""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from jobs.poller import main as poller
from jobs.poller.cursor import Cursor
from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.testing import FakeHubSpot

from .conftest import TOKEN


@pytest.fixture
def hubspot():
    with FakeHubSpot(tokens={TOKEN}, search_limit_per_second=None) as fake:
        yield fake


@pytest.fixture
def config(config):
    return replace(config, search_limit=1000, burst_limit=100_000, poll_interval=60, poll_lookback=5,
                   archive_sweep_interval=0, poll_lock_ttl=3)


@pytest.fixture
def seen():
    return []


@pytest.fixture
def router(seen):
    tickets = Router()
    tickets.add(seen.append, "ticket.*", name="tickets", properties=["subject"])
    return tickets


def poll(config, router, **options):
    """One round of ``hubhook poll --once``."""
    poller.run(config, once=True, router=router, **options)


def queued(config, redis):
    """Every event waiting in the queue or a portal's lane, job by job."""
    from .conftest import queued_jobs

    return [e for job in queued_jobs(redis, build_queue(config, redis)) for e in job.args[0]]


def cursor(config, redis, stream="search", object_type="ticket"):
    """The stored cursor of one stream."""
    return Cursor(redis, config.portal_id, object_type, stream).load()


def wait_for(predicate, timeout, what):
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
