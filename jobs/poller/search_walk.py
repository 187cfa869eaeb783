"""Walk CRM search in modified-date order without ever asking past its 10,000-result cap.

HubSpot's search answers at most 10,000 results per query and refuses (400) a page beyond that
(https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm). The walk sorts
ascending on the modified-date property with a ``GTE`` lower bound
and, before ``after`` would cross 10,000, restarts the query with the lower bound moved up to the
last modified time it saw. That restart re-reads the objects sharing that last millisecond: the
caller's seen set drops them. When one millisecond holds a whole window (a bulk import can stamp
tens of thousands of records alike), moving the bound cannot make progress; so when a window ends on
a full page of one millisecond ``t`` the walk switches to a tie-break instead of restarting:
``modified EQ t AND hs_object_id GT last_id``, sorted by id, in windows of 10,000, then carries on
from ``t + 1``. It does not assume HubSpot orders ties by id: the tie-break walks every
id at ``t`` from the start, and the seen set drops the ones the range walk already delivered.

The walk is a generator: the next request is sent only when the caller asks for the next page, so
the caller can check its leadership and commit each page before the walk moves on.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from webhook_service.timestamps import parse_ms

MAX_RESULTS = 10_000
PAGE_SIZE = 200
Search = Callable[[dict], dict]


@dataclass(frozen=True)
class Page:
    """One page of search results, with the lower bound of the query that produced it."""

    results: list[dict]
    lower_ms: int
    total: int | None = None     # what HubSpot says the query matches (for progress bars)

    def versions(self, prop: str) -> list[tuple[str, int]]:
        """(id, modified ms) of each result, in result order."""
        return [(str(r["id"]), modified_ms(r, prop)) for r in self.results]


def walk(search: Search, prop: str, lower_ms: int, *, upper_ms: int | None = None,
         properties: tuple[str, ...] = ()) -> Iterator[Page]:
    """Every object with ``lower_ms <= modified < upper_ms`` (upper open when None), ascending."""
    fields = list(dict.fromkeys((prop, "hs_object_id", *properties)))
    while True:
        bound = [{"propertyName": prop, "operator": "GTE", "value": str(lower_ms)}]
        if upper_ms is not None:
            bound.append({"propertyName": prop, "operator": "LT", "value": str(upper_ms)})
        last: Page | None = None
        finished = True
        for page, more in _window(search, bound, prop, fields, lower_ms):
            last = page if page.results else last
            yield page
            finished = not more
        if finished or last is None:
            return
        stamps = {ms for _, ms in last.versions(prop)}
        last_ms = max(stamps)
        if len(stamps) > 1 or len(last.results) < PAGE_SIZE:
            lower_ms = last_ms          # restart at the last millisecond seen; its few ties are re-read
            continue
        # A whole page shares one millisecond: there may be 10,000 of them, and restarting at that
        # millisecond could then never get past it. Walk that millisecond by id instead.
        yield from _ties(search, prop, last_ms, fields)
        lower_ms = last_ms + 1          # every object at this millisecond is delivered


def _ties(search: Search, prop: str, at_ms: int, fields: list[str]) -> Iterator[Page]:
    """Every object whose modified date is exactly ``at_ms``, by id, 10,000 a query."""
    last_id = 0
    while True:
        bound = [{"propertyName": prop, "operator": "EQ", "value": str(at_ms)},
                 {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)}]
        finished = True
        for page, more in _window(search, bound, "hs_object_id", fields, at_ms):
            if page.results:
                last_id = max(last_id, *(int(r["id"]) for r in page.results))
            yield page
            finished = not more
        if finished:
            return


def _window(search: Search, filters: list[dict], sort: str, fields: list[str],
            lower_ms: int) -> Iterator[tuple[Page, bool]]:
    """One query's pages up to the cap; ``more`` is True when results remain beyond this window
    (the caller must restart) and on every page but the last of a finished query."""
    after = 0
    while True:
        body = {"filterGroups": [{"filters": filters}],
                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": fields, "limit": PAGE_SIZE, "after": str(after)}
        answer = search(body)
        following = ((answer.get("paging") or {}).get("next") or {}).get("after")
        more = bool(following) and bool(answer.get("results"))
        yield Page(answer.get("results") or [], lower_ms, answer.get("total")), more
        if not more:
            return
        after = int(str(following))
        if after + PAGE_SIZE > MAX_RESULTS:
            return                      # the next page would pass 10,000: the caller restarts


def modified_ms(result: dict, prop: str) -> int:
    """A result's modified date in epoch ms (HubSpot sends ISO-8601 strings; ms strings also work)."""
    value = (result.get("properties") or {}).get(prop) or result.get("updatedAt")
    return parse_ms(value)


def created_ms(result: dict, prop: str) -> int | None:
    """A result's create date in epoch ms, from ``createdAt`` or the type's create-date property."""
    props = result.get("properties") or {}
    value = result.get("createdAt") or props.get(prop)
    return parse_ms(value) if value else None
