"""What the fake's CRM search can see of one object type, ordered for cheap paging.

HubSpot's search shows a write only "after a few moments" and never shows archived records
(https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm). Keeping those
published versions apart from the store, sorted by (modified ms, id),
lets the poller's query (a GTE watermark on the modified date, ascending) run as a bisect and a
slice even over 200k records.
"""
from __future__ import annotations

import bisect
import time
from collections import deque

from webhook_service.testing.fake_hubspot.shapes import Record


class SearchIndex:
    """The record versions search can see for one object type, ordered for cheap paging.

    A write is staged and published ``lag`` seconds later; until then search keeps returning the
    previous version (or nothing, for a new record). Archived and merged-away records leave at once.
    Callers hold the owning store's lock.
    """

    def __init__(self, lag: float) -> None:
        self.lag = lag
        self.live: dict[int, Record] = {}
        self.by_modified: list[tuple[int, int]] = []     # (updated_ms, id), ascending
        self.by_id: list[int] = []
        self._pending: deque[tuple[float, Record]] = deque()
        self._gone: set[int] = set()

    def stage(self, record: Record) -> None:
        """Make ``record`` visible to search after the lag."""
        if self.lag <= 0:
            self._publish(record)
        else:
            self._pending.append((time.monotonic() + self.lag, record))

    def drop(self, object_id: str) -> None:
        """Hide a record from search for good (archived, or merged into a new record)."""
        key = int(object_id)
        self._gone.add(key)
        old = self.live.pop(key, None)
        if old is not None:
            del self.by_modified[bisect.bisect_left(self.by_modified, (old.updated_ms, key))]
            del self.by_id[bisect.bisect_left(self.by_id, key)]

    def flush(self) -> None:
        """Publish every staged write whose lag has passed."""
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            record = self._pending.popleft()[1]
            if int(record.id) not in self._gone:
                self._publish(record)

    def _publish(self, record: Record) -> None:
        key = int(record.id)
        old = self.live.get(key)
        if old is None:
            bisect.insort(self.by_id, key)
        else:
            del self.by_modified[bisect.bisect_left(self.by_modified, (old.updated_ms, key))]
        bisect.insort(self.by_modified, (record.updated_ms, key))
        self.live[key] = record
