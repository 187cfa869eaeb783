"""The poller's memory in Redis: where each (portal, type) stream stands and what it already delivered.

A cursor is a Redis hash per (portal, object type, stream) — ``search`` for the modified-date walk,
``archive`` for the deletion sweep, ``backfill`` for a history walk — so any poller process, on any
machine, resumes exactly where the last leader stopped. Its ``position`` only ever moves forward, and
only after the page that justifies it is durably enqueued (``commit``): a crash between enqueue and
commit re-reads that page and the seen set drops it, so nothing is lost and nothing repeats.

The seen set is a sorted set of ``"<id>:<modified ms>"`` scored by the modified time. Search lags
writes, so every pass re-reads a lookback window; the set says which of those versions were already
delivered. It is trimmed below the lowest time any future read can reach, so it holds roughly one
lookback window of changes, not history.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from jobs.poller.leader import text
from webhook_service import keys

#: ``KEYS``: cursor hash, seen set. ``ARGV``: new position, trim floor, then score/member pairs.
#: One script, so the seen marks, the trim and the forward-only position move together or not at all.
_COMMIT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'position') or '-1')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'position', ARGV[1]) end
for i = 3, #ARGV, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ARGV) do chunk[#chunk + 1] = ARGV[j] end
  if #chunk > 0 then redis.call('ZADD', KEYS[2], unpack(chunk)) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2])
return redis.call('HGET', KEYS[1], 'position')
"""


@dataclass(frozen=True)
class CursorState:
    """A snapshot of one cursor hash (``None`` where a field was never written)."""

    position: int | None
    floor: int | None
    fields: dict[str, str]


class Cursor:
    """One stream's cursor: ``Cursor(redis, portal, "ticket", "search")``."""

    def __init__(self, redis: Redis, portal: int, object_type: str, stream: str) -> None:
        self.redis = redis
        self.portal, self.object_type, self.stream = portal, object_type, stream
        self.key = keys.poller_cursor(portal, object_type, stream)
        # Deletions have their own seen set: an archive time may equal some version's modified time.
        kind = "archive" if stream == "archive" else "changes"
        self.seen_key = keys.poller_seen(portal, object_type, kind)
        self._commit = redis.register_script(_COMMIT)

    def load(self) -> CursorState:
        """The stored state; position/floor as epoch ms."""
        raw = read_hash(self.redis, self.key)
        return CursorState(_int(raw.get("position")), _int(raw.get("floor")), raw)

    def start(self, position_ms: int, *, floor_ms: int | None = None, **fields: object) -> CursorState:
        """Create the cursor if it does not exist yet (first start: "now"); return the stored state.

        HSETNX keeps a concurrent or earlier start from being overwritten: the first one wins.
        """
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self.key, "position", position_ms)
            pipe.hsetnx(self.key, "floor", position_ms if floor_ms is None else floor_ms)
            for name, value in fields.items():
                pipe.hsetnx(self.key, name, str(value))
            pipe.execute()
        return self.load()

    def reset(self, position_ms: int, *, floor_ms: int | None = None, **fields: object) -> CursorState:
        """Replace the cursor (a new backfill); the seen set is shared with the live walk and kept."""
        floor = position_ms if floor_ms is None else floor_ms
        mapping: dict[Any, Any] = {"position": position_ms, "floor": floor,
                                   **{k: str(v) for k, v in fields.items()}}
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            pipe.hset(self.key, mapping=mapping)
            pipe.execute()
        return self.load()

    def unseen(self, versions: Sequence[tuple[str, int]]) -> list[bool]:
        """For each (id, modified ms): True when it was not delivered yet."""
        if not versions:
            return []
        scores = self.redis.zmscore(self.seen_key, [f"{i}:{ms}" for i, ms in versions])
        return [s is None for s in scores]

    def commit(self, versions: Iterable[tuple[str, int]], position_ms: int, trim_below_ms: int) -> int:
        """Mark ``versions`` delivered, move the position forward to ``position_ms`` (never back) and
        forget versions older than ``trim_below_ms``; return the stored position."""
        argv: list[Any] = [position_ms, trim_below_ms]
        for object_id, ms in versions:
            argv += [ms, f"{object_id}:{ms}"]
        return int(self._commit(keys=[self.key, self.seen_key], args=argv))

    def record(self, outcome: str, **fields: object) -> None:
        """Note how the last pass went (shown by ``hubhook status``)."""
        mapping: dict[Any, Any] = {"outcome": outcome, "polled_at": f"{time.time():.3f}",
                                   **{k: str(v) for k, v in fields.items()}}
        self.redis.hset(self.key, mapping=mapping)

    def set_fields(self, **fields: object) -> None:
        """Store extra fields (e.g. a backfill's ``done`` flag)."""
        mapping: dict[Any, Any] = {k: str(v) for k, v in fields.items()}
        self.redis.hset(self.key, mapping=mapping)

    def clear(self, *names: str) -> None:
        """Remove fields that only mattered while a pass ran."""
        self.redis.hdel(self.key, *names)


def read_hash(redis: Redis, name: str) -> dict[str, str]:
    """A hash as text (status reads cursors with this too)."""
    return {text(k): text(v) for k, v in redis.hgetall(name).items()}


def _int(value: str | None) -> int | None:
    return None if value in (None, "") else int(float(value))
