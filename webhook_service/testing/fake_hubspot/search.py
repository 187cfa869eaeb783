"""How the fake runs a CRM search request against a SearchIndex.

Search (https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm) is where HubSpot
differs most from a database, and where hubhook's poller must cope:
paging stops at 10,000 results, ties are broken by id, numbers and dates compare as numbers.
Range filters on the modified date become a slice of the index, so the poller's query stays cheap
over 200k records; any other query takes the generic path (filter everything, then sort).
"""
from __future__ import annotations

import bisect
import fnmatch
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from webhook_service.objects import ObjectType
from webhook_service.testing.fake_hubspot.index import SearchIndex
from webhook_service.testing.fake_hubspot.shapes import Record, ValidationFailed, created_property, names_of, render
from webhook_service.timestamps import parse_ms_or_none

MAX_RESULTS = 10_000
MAX_PAGE = 200
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_COMPARE = {"EQ": operator.eq, "NEQ": operator.ne, "GT": operator.gt, "GTE": operator.ge,
            "LT": operator.lt, "LTE": operator.le}
_RANGE = {"GT", "GTE", "LT", "LTE", "EQ", "BETWEEN"}
_OPERATORS = set(_COMPARE) | _RANGE | {"IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN",
                                       "NOT_CONTAINS_TOKEN"}
Predicate = Callable[[Record], bool]


def search(index: SearchIndex, otype: ObjectType, body: dict[str, Any], *,
           known: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Run one search request body against ``index``; raises ValidationFailed where HubSpot says 400.
    ``known`` tells which asked properties the portal has (see ``render``)."""
    index.flush()
    limit, after = _integer(body.get("limit", 10), "limit"), _integer(body.get("after") or 0, "after")
    if not 0 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit must be between 0 and {MAX_PAGE}, got {limit}")
    if after < 0 or after + limit > MAX_RESULTS:
        raise ValidationFailed("There was a problem with the request.")
    groups = _groups(body.get("filterGroups"))
    name, descending = _sort(body.get("sorts"))
    keys, lo, hi, rest = index.by_modified, 0, len(index.by_modified), groups
    if len(groups) == 1:
        lo, hi, narrowed = _bounds(groups[0], otype, keys)
        rest = [narrowed] if narrowed else []
    match = _matcher(rest, otype, str(body.get("query") or ""))
    if name == otype.modified_property and not descending and match is None:
        total = hi - lo
        page = [key for _, key in keys[lo + after:min(hi, lo + after + limit)]]
    else:
        ordered = _ordered(index, otype, (lo, hi), match, name, descending)
        total, page = len(ordered), ordered[after:after + limit]
    names = names_of(body, "properties")
    out: dict[str, Any] = {"total": total, "results": [render(index.live[key], otype, names, known=known)
                                                  for key in page]}
    if limit and after + limit < total and after + limit <= MAX_RESULTS:
        out["paging"] = {"next": {"after": str(after + limit)}}
    return out


def _ordered(index: SearchIndex, otype: ObjectType, window: tuple[int, int], match: Predicate | None,
             name: str | None, descending: bool) -> list[int]:
    """Ids of every match in result order; ties (and no sort at all) go by id ascending, like HubSpot."""
    lo, hi = window
    if name == otype.modified_property and not descending:
        ids = [key for _, key in index.by_modified[lo:hi]]
    elif (lo, hi) == (0, len(index.by_modified)):
        ids = index.by_id
    else:
        ids = sorted(key for _, key in index.by_modified[lo:hi])
    if match is not None:
        ids = [key for key in ids if match(index.live[key])]
    if name not in (None, "hs_object_id", otype.modified_property) or descending:
        value = _value_reader(otype)
        ids = sorted(ids, key=lambda key: _sort_key(value(index.live[key], name or "")), reverse=descending)
    return ids


def _integer(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{field} must be an integer, got {value!r}") from None


def _groups(raw: Any) -> list[list[dict[str, Any]]]:
    """filterGroups validated against HubSpot's limits: 5 groups, 6 filters each, 18 in all."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(g, dict) and isinstance(g.get("filters", []), list)
                                            for g in raw):
        raise ValidationFailed("filterGroups must be a list of {\"filters\": [...]} objects")
    groups = [g.get("filters", []) for g in raw]
    if len(groups) > 5 or any(len(g) > 6 for g in groups) or sum(map(len, groups)) > 18:
        raise ValidationFailed("Too many filters: at most 5 filterGroups, 6 filters per group, 18 in all")
    for f in (f for g in groups for f in g):
        if not isinstance(f, dict) or not isinstance(f.get("propertyName"), str) or \
                f.get("operator", "EQ") not in _OPERATORS:
            raise ValidationFailed(f"Invalid filter: {f!r}")
    return groups


def _sort(raw: Any) -> tuple[str | None, bool]:
    """The one sort HubSpot applies: (property, descending); no sort means id ascending."""
    if not raw:
        return None, False
    first = raw[0] if isinstance(raw, list) else None
    if not isinstance(first, dict) or not isinstance(first.get("propertyName"), str):
        raise ValidationFailed("sorts must be a list of {\"propertyName\", \"direction\"} objects")
    return first["propertyName"], first.get("direction", "ASCENDING") == "DESCENDING"


def _bounds(filters: list[dict], otype: ObjectType, keys: list[tuple[int, int]]) -> tuple[int, int, list]:
    """Turn range filters on the modified date into a slice of ``keys``; return the other filters."""
    lo, hi, rest = 0, len(keys), []
    for f in filters:
        op, low = f.get("operator", "EQ"), _norm(f.get("value"))
        top = _norm(f.get("highValue")) if op == "BETWEEN" else low
        if f["propertyName"] != otype.modified_property or op not in _RANGE or not isinstance(low, float) \
                or not isinstance(top, float):
            rest.append(f)
            continue
        if op in ("GT", "GTE", "EQ", "BETWEEN"):
            start = math.floor(low) + 1 if op == "GT" else math.ceil(low)
            lo = max(lo, bisect.bisect_left(keys, (start,)))
        if op in ("LT", "LTE", "EQ", "BETWEEN"):
            end = math.ceil(top) if op == "LT" else math.floor(top) + 1
            hi = min(hi, bisect.bisect_left(keys, (end,)))
    return lo, max(lo, hi), rest


def _matcher(groups: list[list[dict]], otype: ObjectType, query: str) -> Predicate | None:
    """One predicate for the remaining filters (groups ORed, filters ANDed) and the text query."""
    if len(query) > 3000:
        raise ValidationFailed("query must be at most 3000 characters")
    value = _value_reader(otype)
    compiled = [[_predicate(f, value) for f in g] for g in groups]
    text = query.lower()
    if not compiled and not text:
        return None

    def match(record: Record) -> bool:
        if text and not any(text in v.lower() for v in record.properties.values()):
            return False
        return not compiled or any(all(p(record) for p in g) for g in compiled)
    return match


def _value_reader(otype: ObjectType) -> Callable[[Record, str], float | str | None]:
    """Read a property for comparison: ids numeric, create and modified dates as epoch ms."""
    created, modified = created_property(otype), otype.modified_property

    def value(record: Record, name: str) -> float | str | None:
        if name == "hs_object_id":
            return float(record.id)
        if name == modified:
            return float(record.updated_ms)
        if name == created:
            return float(record.created_ms)
        return _norm(record.properties.get(name) or None)
    return value


def _predicate(f: dict[str, Any], value: Callable[[Record, str], Any]) -> Predicate:
    name, op = f["propertyName"], f.get("operator", "EQ")
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return lambda r: (value(r, name) is not None) == (op == "HAS_PROPERTY")
    if op in ("IN", "NOT_IN"):
        wanted = {_norm(v) for v in f.get("values") or []}
        return lambda r: (value(r, name) in wanted) == (op == "IN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(f.get("value", "")).lower()

        def has_token(r: Record) -> bool:
            text = (r.properties.get(name) or "").lower()
            return any(fnmatch.fnmatchcase(token, pattern) for token in [text, *re.split(r"[\s,;]+", text)])
        return lambda r: has_token(r) == (op == "CONTAINS_TOKEN")
    low, high = _norm(f.get("value")), _norm(f.get("highValue"))
    if op == "BETWEEN":
        return lambda r: (_compare(value(r, name), low, operator.ge)
                          and _compare(value(r, name), high, operator.le))
    return lambda r: _compare(value(r, name), low, _COMPARE[op])


def _compare(left: Any, right: Any, how: Callable[[Any, Any], bool]) -> bool:
    """Compare like HubSpot: a missing value only satisfies NEQ; mixed kinds compare as text."""
    if left is None or right is None:
        return how is operator.ne and left != right
    if type(left) is not type(right):
        left, right = str(left), str(right)
    return how(left, right)


def _norm(raw: Any) -> float | str | None:
    """Numbers and dates (ms or ISO) as float, anything else as lowercase text."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if _NUMBER.match(text):
        return float(text)
    ms = parse_ms_or_none(text) if text[:1].isdigit() else None
    return float(ms) if ms is not None else text.lower()


def _sort_key(value: float | str | None) -> tuple[int, Any]:
    """Numbers before text, missing values last (for ascending order)."""
    if value is None:
        return 2, ""
    return (0, value) if isinstance(value, float) else (1, value)
