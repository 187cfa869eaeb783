"""``hubhook poll --backfill [--since DATE]``: deliver history, resumably, with a progress bar.

A backfill walks ``[since, until)`` of one type in modified-date order, where ``until`` is where the
live walk begins: the live cursor's lower bound if it exists, else "now" (and then the live cursor
is created right there, so live polling continues seamlessly after the backfill, even if the
backfill is interrupted). Its checkpoint is a cursor of its own (stream ``backfill``): a backfill
killed at any point resumes from it when ``--backfill`` is given again (with the same or no
``--since``); a finished one, or a different ``--since``, starts over. It shares the live walk's
seen set, so the overlap at ``until`` is never delivered twice.

The leader runs a backfill in slices of one search window (at most 10,000 records), between the
live passes, so live changes keep flowing during a long backfill.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from tqdm import tqdm

from jobs.poller.cursor import Cursor
from jobs.poller.polled_types import Stream
from jobs.poller.search_pass import Guard, deliver_page, now_ms, resilient_search
from jobs.poller.search_walk import MAX_RESULTS, PAGE_SIZE, walk
from jobs.worker.context import Context
from webhook_service.errors import ConfigError
from webhook_service.timestamps import iso_utc, parse_iso_ms

log = logging.getLogger("hubhook.poller")
SLICE_PAGES = MAX_RESULTS // PAGE_SIZE


def parse_since(value: str | None) -> int:
    """``--since`` as epoch ms: ``2024-05-01`` or any ISO-8601 time (UTC unless it says otherwise)."""
    if not value:
        return 0
    try:
        return parse_iso_ms(value)
    except ValueError:
        raise ConfigError(f"--since must be a date like 2024-05-01 or 2024-05-01T12:00:00Z, "
                          f"got {value!r}") from None


class Backfill:
    """One type's backfill: ``step`` delivers one slice and says whether more remains."""

    def __init__(self, ctx: Context, stream: Stream, since: str | None) -> None:
        self.ctx, self.stream = ctx, stream
        self.checkpoint = Cursor(ctx.redis, stream.portal, stream.name, "backfill")
        self.lookback_ms = int(ctx.config.poll_lookback * 1000)
        self.since_ms, self.explicit_since = parse_since(since), since is not None
        self._pages: Iterator | None = None
        self._bar: tqdm | None = None
        self.state = self._prepare()

    def _prepare(self):
        stored = self.checkpoint.load()
        fields = stored.fields
        resumable = stored.position is not None and fields.get("done") != "1" and \
            (not self.explicit_since or int(fields.get("since", -1)) == self.since_ms)
        if resumable:
            log.info("%s backfill: resuming from checkpoint %s", self.stream.name, _iso(stored.position))
            return stored
        live = Cursor(self.ctx.redis, self.stream.portal, self.stream.name, "search")
        current = live.load()
        if current.position is None:
            until = now_ms()
            live.start(until, floor_ms=until - self.lookback_ms)  # live re-reads the backfill's last lookback
        else:
            until = max(current.position - self.lookback_ms, current.floor or 0)
        log.info("%s backfill: walking %s .. %s", self.stream.name, _iso(self.since_ms), _iso(until))
        return self.checkpoint.reset(self.since_ms, since=self.since_ms, until=until, done=0, delivered=0)

    @property
    def done(self) -> bool:
        return self.checkpoint.load().fields.get("done") == "1"

    def step(self, guard: Guard) -> bool:
        """Deliver up to one search window; return True while history remains."""
        state = self.checkpoint.load()
        since, until = int(state.fields["since"]), int(state.fields["until"])
        if self._pages is None:
            lower = max(state.position or since, since)
            self._pages = walk(resilient_search(self.ctx, self.stream, guard), self.stream.prop, lower,
                               upper_ms=until, properties=(self.stream.created_prop,))
        delivered = int(state.fields.get("delivered", 0))
        try:
            for _ in range(SLICE_PAGES):
                page = next(self._pages, None)
                if page is None:
                    self._finish(delivered)
                    return False
                if self._bar is None:
                    self._bar = tqdm(desc=f"backfill {self.stream.name}", unit="rec", total=page.total,
                                     disable=None, leave=False)
                delivered += deliver_page(self.ctx, self.stream, self.checkpoint, page, previous_ms=since,
                                          lookback_ms=self.lookback_ms, guard=guard)
                self._bar.update(len(page.results))
                self.checkpoint.set_fields(delivered=delivered)
        except BaseException:
            self._pages = None  # resume from the checkpoint next time
            raise
        self.checkpoint.record(f"running: {delivered} delivered, at {_iso(self.checkpoint.load().position)}")
        return True

    def _finish(self, delivered: int) -> None:
        self.checkpoint.set_fields(done=1, finished_at=f"{time.time():.3f}")
        self.checkpoint.record(f"done: {delivered} delivered", delivered=delivered)
        if self._bar is not None:
            self._bar.close()
        log.info("%s backfill: done, %d delivered", self.stream.name, delivered)


def _iso(ms: int | None) -> str:
    return "-" if ms is None else iso_utc(ms)
