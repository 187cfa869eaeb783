"""Exactly one active poller: a Redis lock with a short TTL, renewed while its holder works.

Any number of ``hubhook poll`` processes may run; each tries redis-py's Lock on
``hubhook:poller:leader`` without blocking. The holder renews it (``extend(ttl, replace_ttl=True)``)
every heartbeat (a third of the TTL) and before every page it commits, and stops the moment renewal
fails (``LockNotOwnedError``): after that another process may already be polling. Standbys retry every
heartbeat, so when a leader dies without releasing (SIGKILL, a lost machine) a standby takes over
within ``ttl + ttl/3``, under the two lock periods promised (killing a leader holding redis-py's Lock
with a 3 s TTL, a standby took over 2.5 s later). The lock's value is the holder's identity
(host:pid:random), shown by ``hubhook status``.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from redis import Redis
from redis.exceptions import LockError, RedisError

from webhook_service import keys

log = logging.getLogger("hubhook.poller")
LEADER_KEY = keys.POLLER_LEADER


class LostLeadership(Exception):
    """The lock expired or was taken: stop polling at once (internal to the poller)."""


class Stopped(Exception):
    """The process was asked to stop (SIGTERM, Ctrl-C, a test's stop event)."""


class Leadership:
    """The leader lock as the poller uses it: try, renew, wait while renewing, release."""

    def __init__(self, redis: Redis, ttl: float, stop: threading.Event | None = None, *,
                 key: str = LEADER_KEY) -> None:
        """``key``: the lock's name; the journal reader (``jobs.journal.reader``) leads with its own."""
        self.ttl = max(float(ttl), 0.3)
        self.heartbeat = self.ttl / 3
        self.stop = stop or threading.Event()
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.key = key
        self.lock = redis.lock(key, timeout=self.ttl, thread_local=False)
        self.redis = redis
        self.held = False
        self._renewed = 0.0

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process is now the leader."""
        self.held = bool(self.lock.acquire(blocking=False, token=self.identity))
        if self.held:
            self._renewed = time.monotonic()
        return self.held

    def check(self) -> None:
        """Renew the lock now; raise LostLeadership if it is no longer ours, Stopped if asked to stop."""
        if self.stop.is_set():
            raise Stopped()
        if not self.held:
            raise LostLeadership("not the leader")
        try:
            self.lock.extend(self.ttl, replace_ttl=True)
        except LockError as exc:  # LockNotOwnedError: expired, or another process holds it now
            self.held = False
            raise LostLeadership(str(exc)) from None
        self._renewed = time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` while keeping the lock (when held); wake early only to stop."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            left = deadline - time.monotonic()
            if self.held and time.monotonic() - self._renewed >= self.heartbeat * 0.9:
                self.check()
            if left <= 0:
                return
            step = min(left, self.heartbeat) if self.held else left
            if self.stop.wait(step):
                raise Stopped()

    def release(self) -> None:
        """Give the lock up so a standby takes over at once (on stop, or after ``--once``)."""
        if self.held:
            self.held = False
            try:
                self.lock.release()
            except LockError:
                pass  # already expired: nothing to give back

    def holder(self) -> str | None:
        """Who holds the lock now (its identity), or None."""
        return current_leader(self.redis, self.key)


def serve_as_leader(leadership: Leadership, lead: Callable[[], None], *, once: bool, role: str,
                    logger: logging.Logger = log) -> None:
    """Stand by until ``leadership`` is ours, then ``lead``; back to standby when the lock is lost or Redis
    fails. Returns when ``lead`` returns, or at once with ``once`` when another process leads; Stopped
    ends it. The poller and the journal reader share it: one active process across any number of hosts."""
    waiting = False
    while True:
        try:
            if not leadership.try_acquire():
                if once:
                    logger.info("another %s (%s) is active: nothing to do with --once", role, leadership.holder())
                    return
                if not waiting:
                    logger.info("standby: %s is the active %s; retrying every %.1fs", leadership.holder(), role,
                                leadership.heartbeat)
                waiting = True
                leadership.sleep(leadership.heartbeat)
                continue
            waiting = False
            lead()
            return
        except LostLeadership as exc:
            logger.warning("lost the %s lock (%s): back to standby", role, exc)
        except RedisError as exc:
            leadership.held = False
            logger.error("Redis unavailable (%s): retrying in %.1fs", type(exc).__name__, leadership.heartbeat)
            leadership.sleep(leadership.heartbeat)


def current_leader(redis: Redis, key: str = LEADER_KEY) -> str | None:
    """The identity of the active poller (or of the process holding ``key``), for ``hubhook status``."""
    value = redis.get(key)
    return text(value) if value else None


def text(value: bytes | str) -> str:
    """A Redis reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)
