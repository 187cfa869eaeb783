"""``hubhook poll``: the fallback poller process.

Any number may run; one leads (``leader.py``) and walks, for each polled type, CRM search from its
cursor (``poll_pass.py``), the archived list for deletions (``sweep.py``) and, when asked, history
(``backfill.py``). Standbys wait on the lock. The leader's scheduler runs whatever is due, and keeps
renewing the lock while it waits for the next thing. A failure of one type never stops the others:
429s and 5xx wait and resume from the stored cursor, a type HubSpot does not know (400/404 on its
search) is dropped with one log line, anything else is retried with backoff.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from jobs.poller import polled_types
from jobs.poller.archive_sweep import sweep
from jobs.poller.backfill import Backfill, parse_since
from jobs.poller.cursor import Cursor, read_hash
from jobs.poller.leader import Leadership, LostLeadership, Stopped, current_leader, serve_as_leader, text
from jobs.poller.search_pass import Guard, now_ms, search_pass
from jobs.worker.context import Context
from webhook_service import keys
from webhook_service.config import Config
from webhook_service.connection import redis_client
from webhook_service.errors import ConfigError, HubSpotAPIError, RateLimited
from webhook_service.router import Router
from webhook_service.timestamps import iso_utc

log = logging.getLogger("hubhook.poller")
#: With ``--once``, a task that keeps failing is given up after this many attempts.
ONCE_ATTEMPTS = 3
MAX_BACKOFF = 300.0


@dataclass
class Task:
    """Something the leader does every ``interval`` seconds for one stream."""

    kind: str                                  # "search", "archive" or "backfill"
    stream: polled_types.Stream
    interval: float
    work: Callable[[Guard], bool]              # returns True when it should run again right away
    due: float = 0.0
    failures: int = 0
    finished: bool = False                     # done for good (backfill complete, type unknown)
    completed: bool = False                    # one full run succeeded (what --once waits for)

    @property
    def label(self) -> str:
        return f"{self.stream.name} {self.kind}"


class Scheduler:
    """The leader's loop over its tasks. In memory only: when each task is due next (a new leader
    runs everything at once); every position lives in Redis."""

    def __init__(self, ctx: Context, plan: polled_types.Plan, *, backfill: bool, since: str | None) -> None:
        self.ctx = ctx
        self.tasks: list[Task] = []
        for stream in plan.streams:
            self.tasks.append(Task("search", stream, stream.interval, _one_run(search_pass, ctx, stream)))
        sweep_every = ctx.config.archive_sweep_interval
        for stream in plan.polled if sweep_every else ():
            self.tasks.append(Task("archive", stream, sweep_every, _one_run(sweep, ctx, stream)))
        for stream in plan.polled if backfill else ():
            self.tasks.insert(0, Task("backfill", stream, 0.0, self._backfiller(stream, since)))

    def _backfiller(self, stream: polled_types.Stream, since: str | None) -> Callable[[Guard], bool]:
        state: dict[str, Backfill] = {}

        def work(guard: Guard) -> bool:
            if "job" not in state:  # prepared once leadership is ours: it writes the checkpoint
                state["job"] = Backfill(self.ctx, stream, since)
            more = state["job"].step(guard)
            if not more:
                task = next(t for t in self.tasks if t.work is work)
                task.finished = True
            return more
        return work

    def wake(self) -> None:
        """Make every task due now (a new leader polls at once)."""
        for task in self.tasks:
            task.due = 0.0

    def run(self, guard: Leadership, *, once: bool) -> None:
        """Run due tasks until stopped, leadership is lost, or (``once``) every task ran once."""
        while True:
            now = time.monotonic()
            due = [t for t in self.tasks if not t.finished and t.due <= now]
            for task in sorted(due, key=lambda t: t.due):
                self._run(task, guard)
                guard.check()
            if once and all(t.completed or t.failures >= ONCE_ATTEMPTS for t in self.tasks if not t.finished):
                return
            upcoming = [t.due for t in self.tasks if not t.finished]
            guard.sleep(min(upcoming) - time.monotonic() if upcoming else guard.heartbeat)

    def _run(self, task: Task, guard: Guard) -> None:
        cursor = Cursor(self.ctx.redis, task.stream.portal, task.stream.name, task.kind)
        started_ms = now_ms()
        try:
            again = task.work(guard)
        except (LostLeadership, Stopped, RedisError):
            raise
        except RateLimited as exc:
            self._failed(task, cursor, f"rate limited ({exc.policy or 429}); waiting {exc.retry_after:.0f}s",
                         exc.retry_after)
        except HubSpotAPIError as exc:
            if exc.status in (400, 404) and task.kind in ("search", "backfill", "archive"):
                task.finished = True
                for other in self.tasks:  # the type is unknown to HubSpot: stop all of its tasks
                    other.finished |= other.stream == task.stream
                log.error("%s: HubSpot does not know object type %r (%s); no longer polling it, other types "
                          "continue. Fix the handler's type or HUBHOOK_WEBHOOK_TYPES.", task.label,
                          task.stream.otype.api_name, exc)
                cursor.record(f"stopped: unknown type ({exc.status})")
                return
            self._failed(task, cursor, f"error: {exc}", self._backoff(task))
        except Exception as exc:  # a bug or an unexpected answer: log it, keep the other types going
            log.exception("%s failed", task.label)
            self._failed(task, cursor, f"error: {type(exc).__name__}: {exc}"[:300], self._backoff(task))
        else:
            task.failures, task.completed = 0, task.completed or not again
            task.due = time.monotonic() + (0.0 if again else task.interval)
            if not again and task.kind != "backfill":  # everything changed before this run is delivered
                reconciling = task.stream.reconcile and task.kind == "search"
                behind = self.ctx.config.poll_lookback if reconciling else 0
                cursor.set_fields(caught_up_to=started_ms - int(behind * 1000))

    def _failed(self, task: Task, cursor: Cursor, outcome: str, wait: float) -> None:
        task.failures += 1
        task.due = time.monotonic() + wait
        log.warning("%s: %s (attempt %d)", task.label, outcome, task.failures)
        cursor.record(outcome)

    @staticmethod
    def _backoff(task: Task) -> float:
        return min(MAX_BACKOFF, task.interval or 1.0, 2.0 ** task.failures)


def _one_run(fn: Callable[[Context, polled_types.Stream, Guard], str], ctx: Context,
             stream: polled_types.Stream) -> Callable[[Guard], bool]:
    """A task body that runs ``fn`` once per due time."""
    def work(guard: Guard) -> bool:
        fn(ctx, stream, guard)
        return False
    return work


def run(config: Config, *, once: bool = False, backfill: bool = False, since: str | None = None,
        router: Router | None = None, stop: threading.Event | None = None) -> None:
    """The ``hubhook poll`` process: lead or stand by until stopped (or, with ``once``, one round)."""
    if since is not None and not backfill:
        raise ConfigError("--since only applies to a backfill: hubhook poll --backfill --since 2024-01-01")
    if backfill:
        parse_since(since)  # a bad --since fails now, with the fix, not after leadership
    ctx = Context(config, router)
    plan = polled_types.plan(ctx.router, config)
    log.info("%s", polled_types.describe(plan, ctx.router, config))
    if once and not plan.streams:
        return
    leadership = Leadership(ctx.redis, config.poll_lock_ttl, stop)
    restore = _stop_on_signals(leadership.stop)
    scheduler = Scheduler(ctx, plan, backfill=backfill, since=since)

    def lead() -> None:
        log.info("leader: %s polls now", leadership.identity)
        scheduler.wake()
        scheduler.run(leadership, once=once)

    try:
        serve_as_leader(leadership, lead, once=once, role="poller")
    except Stopped:
        log.info("poller stopping")
    finally:
        restore()
        try:
            leadership.release()
        except RedisError:
            pass


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM (Procfile runners, Kubernetes) and SIGINT stop the loop and release the lock, so a
    standby takes over at once; returns what puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return restore


def status_rows(config: Config) -> list[dict]:
    """One row per cursor: where it stands, its lag behind now, the last outcome, and the leader."""
    redis = redis_client(config)
    leader = current_leader(redis)
    now = time.time()
    rows = []
    for name in sorted(text(k) for k in redis.scan_iter(match=keys.POLLER_CURSORS, count=500)):
        *_, portal, object_type, stream = name.split(":")
        fields = read_hash(redis, name)
        position = int(fields["position"]) if fields.get("position") else None
        reference = int(fields.get("caught_up_to") or position or 0)
        polled_at = float(fields["polled_at"]) if fields.get("polled_at") else None
        rows.append({"portal": int(portal), "type": object_type, "stream": stream,
                     "cursor": iso_utc(position) if position is not None else None,
                     "lag_seconds": round(now - reference / 1000, 1) if reference else None,
                     "last_poll": iso_utc(polled_at * 1000) if polled_at else None,
                     "outcome": fields.get("outcome", "never polled"), "leader": leader})
    return rows
