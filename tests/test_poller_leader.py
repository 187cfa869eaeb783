"""Any number of pollers: exactly one polls, and a standby takes over when the leader dies."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from jobs.poller import main as poller
from jobs.poller.leader import LEADER_KEY

from . import poller_support as kit
from .poller_support import queued, wait_for

config, hubspot, router, seen = kit.config, kit.hubspot, kit.router, kit.seen  # the poller tests' fixtures

TTL = 1.5


@pytest.fixture
def fast(config):
    """Pollers that poll every 100 ms and hold a 1.5 s leader lock."""
    return replace(config, poll_interval=0.1, poll_lock_ttl=TTL)


def leader(redis):
    value = redis.get(LEADER_KEY)
    return value.decode() if value else None


def start_poller(config, router):
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(config,), kwargs={"router": router, "stop": stop},
                              daemon=True)
    thread.start()
    return stop, thread


def test_two_pollers_one_polls_and_no_change_is_delivered_twice(fast, redis, hubspot, router, caplog):
    caplog.set_level(logging.INFO, logger="hubhook.poller")
    # Given two pollers running side by side
    pollers = [start_poller(fast, router) for _ in range(2)]
    try:
        wait_for(lambda: leader(redis), 5, "a leader")
        wait_for(lambda: any("standby" in r.getMessage() for r in caplog.records), 5, "the other to stand by")
        # When tickets change in five bursts while both run
        for burst in range(5):
            for i in range(40):
                hubspot.add("tickets", 1000 + burst * 100 + i)
            wait_for(lambda: len(queued(fast, redis)) == (burst + 1) * 40, 10,  # noqa: B023 (called at once)
                     f"burst {burst} to be polled")
        rows = poller.status_rows(fast)
    finally:
        for stop, _thread in pollers:
            stop.set()
        for _stop, thread in pollers:
            thread.join(10)
    # Then every change was enqueued exactly once, by the only poller that ever led
    counts = Counter(e["objectId"] for e in queued(fast, redis))
    assert len(counts) == 200 and set(counts.values()) == {1}
    leaders = {r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("leader:")}
    assert len(leaders) == 1
    # And `hubhook status` can show the cursor, its lag and who leads
    (row,) = [r for r in rows if r["stream"] == "search"]
    assert row["type"] == "ticket" and row["leader"] in leaders and row["outcome"].startswith("ok")
    assert row["lag_seconds"] is not None and row["lag_seconds"] < 5


def test_a_standby_takes_over_within_two_lock_periods_after_sigkill(fast, env, redis, hubspot, router):
    # Given `hubhook poll` leading in its own process, and a standby in this one
    child_env = {**env, "HUBHOOK_HANDLERS": "tests.poller_handlers:router", "HUBHOOK_POLL_LOCK_TTL": str(TTL),
                 "HUBHOOK_POLL_INTERVAL": "0.1", "HUBHOOK_ARCHIVE_SWEEP_INTERVAL": "0",
                 "HUBSPOT_SEARCH_LIMIT": "1000", "HUBHOOK_POLL_LOOKBACK": "5"}
    child = subprocess.Popen([sys.executable, "-m", "webhook_service.cli", "poll"], env=child_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop = None
    try:
        wait_for(lambda: f":{child.pid}:" in (leader(redis) or ""), 20, "the child process to lead")
        stop, thread = start_poller(fast, router)
        hubspot.add("tickets", 1)
        wait_for(lambda: len(queued(fast, redis)) == 1, 10, "the leader to poll ticket 1")
        # When the leader is killed without a chance to release its lock
        child.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: f":{os.getpid()}:" in (leader(redis) or ""), 2 * TTL + 1, "the standby to take over")
        took = time.monotonic() - killed
        hubspot.add("tickets", 2)
        wait_for(lambda: len(queued(fast, redis)) == 2, 10, "the new leader to poll ticket 2")
    finally:
        child.kill()
        child.wait(10)
        if stop is not None:
            stop.set()
            thread.join(10)
    # Then the standby led within two lock periods, and each ticket was enqueued once
    assert took < 2 * TTL
    assert sorted(e["objectId"] for e in queued(fast, redis)) == [1, 2]
