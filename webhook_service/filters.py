"""Which changes reach handlers: echo suppression and the old value behind ``from_=`` filters.

Pure functions over HubSpot's event and record dicts, shared by the worker (``jobs.delivery.job``) and
the handler testing kit (``webhook_service.testing``), so a test sees exactly what production does.

- Echo suppression (``HUBHOOK_IGNORE_SOURCES``): a handler that writes to HubSpot causes a
  propertyChange whose ``changeSource``/``sourceId`` name the writer; listing them drops those
  changes before dispatch, so the handler does not trigger itself. Each entry is compared with
  ``changeSource`` (case-insensitively, e.g. ``INTEGRATION``) and with ``sourceId`` (exactly, e.g.
  ``userId:123``).
- ``from_=``: HubSpot's event carries only the new value. The old one is read from the record's
  ``propertiesWithHistory``, which the enrichment asks for only when some handler uses ``from_=``.
  The poller's propertyChange events of polled types (``jobs.poller.property_changes``) are made from
  that history already, so they carry the old value (``previousValue``) and need no second read.
"""
from __future__ import annotations

from collections.abc import Iterable

from webhook_service.timestamps import parse_ms_or_none

#: The previous value, on propertyChange events the poller made from ``propertiesWithHistory`` (None:
#: the property had no value before, or the history no longer reaches back that far).
PREVIOUS_FIELD = "previousValue"
#: Marks the poller's propertyChange events of polled types (``ORIGIN_FIELD: HISTORY_ORIGIN``): only
#: ``property=`` handlers take them, so handlers without one see polled types exactly as before.
ORIGIN_FIELD = "hubhookOrigin"
HISTORY_ORIGIN = "propertiesWithHistory"
#: A history entry up to this long after ``occurredAt`` still counts as the change itself (clock skew).
SAME_CHANGE_MS = 1000


class IgnoreSources:
    """The parsed HUBHOOK_IGNORE_SOURCES list."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(e for e in entries if e)
        self._sources = {e.upper() for e in self.entries}
        self._ids = set(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def matches(self, change: dict) -> bool:
        """True when ``change`` was made by a source the operator asked hubhook to ignore."""
        source, source_id = change.get("changeSource"), change.get("sourceId")
        return (source is not None and str(source).upper() in self._sources) or \
            (source_id is not None and str(source_id) in self._ids)

    def split(self, events: list[dict]) -> tuple[list[dict], list[dict]]:
        """(kept, dropped), each in the original order."""
        if not self.entries:
            return events, []
        kept: list[dict] = []
        dropped: list[dict] = []
        for event in events:
            (dropped if self.matches(event) else kept).append(event)
        return kept, dropped


def old_value(record: dict | None, change: dict) -> str | None:
    """The value ``change``'s property had just before ``change``; None when it had none (or unknown).

    History is newest first and may already hold later changes: the entry of this change is the
    newest one not after ``occurredAt`` (plus SAME_CHANGE_MS) whose value is the event's new value,
    else the newest one not after it; the old value is the entry right before it in time.
    """
    if PREVIOUS_FIELD in change:  # made from the history by the poller: the old value travels with it
        return change[PREVIOUS_FIELD]
    name = change.get("propertyName")
    entries = ((record or {}).get("propertiesWithHistory") or {}).get(name) or []
    timed = sorted(((parse_ms_or_none(e.get("timestamp")), e.get("value"))
                    for e in entries if isinstance(e, dict)),
                   key=lambda pair: pair[0] if pair[0] is not None else -1, reverse=True)
    limit = int(change.get("occurredAt") or 0) + SAME_CHANGE_MS
    candidates = [i for i, (ms, _) in enumerate(timed) if ms is not None and ms <= limit]
    if not candidates:
        return None
    new = change.get("propertyValue")
    own = next((i for i in candidates if timed[i][1] == new), candidates[0])
    return timed[own + 1][1] if own + 1 < len(timed) else None


def values(option: object) -> frozenset[str] | None:
    """``to=``/``from_=`` as a set of strings (HubSpot sends every value as a string); None when unset."""
    if option is None:
        return None
    if isinstance(option, (str, int, float, bool)):
        return frozenset({_text(option)})
    if isinstance(option, (list, tuple, set, frozenset)) and option and \
            all(isinstance(v, (str, int, float, bool)) for v in option):
        return frozenset(_text(v) for v in option)
    raise TypeError("expected a value or a non-empty list of values")


def _text(value: str | int | float | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
