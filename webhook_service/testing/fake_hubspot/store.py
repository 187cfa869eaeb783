"""One portal's CRM data in the fake HubSpot: records, archive, merges, associations and threads.

HubSpot's read endpoints differ mostly in how an id finds a record (merged-away ids resolve to the
new record, archived ones only with ``archived=true``); keeping that here, behind one lock, lets the
HTTP routes and FakeHubSpot's test helpers agree on it.
"""
from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from webhook_service.objects import ObjectType, lookup
from webhook_service.testing.fake_hubspot.index import SearchIndex
from webhook_service.testing.fake_hubspot.properties import PropertyCatalogue
from webhook_service.testing.fake_hubspot.shapes import Record, as_property, created_property
from webhook_service.testing.fake_hubspot.webhooks import Change
from webhook_service.timestamps import parse_ms_or_none

#: HubSpot-defined default association type ids; pairs not listed get 1 (table in
#: https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide).
DEFAULT_ASSOCIATION: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 279, ("companies", "contacts"): 280, ("deals", "contacts"): 3,
    ("contacts", "deals"): 4, ("deals", "companies"): 341, ("companies", "deals"): 342,
    ("tickets", "contacts"): 16, ("contacts", "tickets"): 15, ("tickets", "companies"): 339,
    ("companies", "tickets"): 340,
}
#: The primary-company variants are HubSpot-defined too; anything else a test passes is a user label.
_HUBSPOT_DEFINED = frozenset(DEFAULT_ASSOCIATION.values()) | {1, 2, 5, 6, 25, 26}
Types = list[dict[str, Any]]


def default_association(from_api: str, to_api: str) -> int:
    """The unlabeled association type id HubSpot uses from one type to another."""
    return DEFAULT_ASSOCIATION.get((from_api, to_api), 1)


class IdAllocator:
    """Increasing HubSpot-style ids shared by all portals, always above any id a test chose."""

    def __init__(self) -> None:
        self._last, self._lock = 1000, threading.Lock()

    def claim(self, wanted: str | int | None = None) -> str:
        """A new id, or ``wanted`` checked and normalised ("0042" is not an id HubSpot would make)."""
        with self._lock:
            if wanted is None:
                self._last += 1
                return str(self._last)
            if not str(wanted).isdigit():
                raise ValueError(f"HubSpot record ids are digit strings, got {wanted!r}")
            self._last = max(self._last, int(wanted))
            return str(int(wanted))


class Store:
    """A portal's records, id redirects left by merges, associations (both directions), threads and
    property catalogue."""

    def __init__(self, search_lag: float) -> None:
        self.lock = threading.RLock()
        self.properties = PropertyCatalogue()
        self.threads: dict[str, dict[str, Any]] = {}
        self._lag = search_lag
        self._records: dict[str, dict[str, Record]] = {}
        self._ids: dict[str, list[int]] = {}           # sorted, archived included: the list endpoint's cursor
        self._merged_into: dict[str, dict[str, str]] = {}
        self._links: dict[tuple[str, str], dict[str, dict[str, Types]]] = {}
        self._indexes: dict[str, SearchIndex] = {}
        #: Told every change a webhook subscription could see (the fake's WebhookEmitter, when it has one).
        self.listener: Callable[[list[Change]], None] | None = None

    def _notify(self, changes: list[Change]) -> None:
        if self.listener is not None and changes:
            self.listener(changes)

    def index(self, otype: ObjectType) -> SearchIndex:
        """The search index of one type (created on first use)."""
        with self.lock:
            if otype.api_name not in self._indexes:
                self._indexes[otype.api_name] = SearchIndex(self._lag)
            return self._indexes[otype.api_name]

    def write(self, otype: ObjectType, object_id: str, properties: dict[str, Any], *, at_ms: int,
              source: str, created_ms: int | None = None, new: bool = False, emit: bool = True,
              user_id: int | None = None) -> Record:
        """Store a new version of a record (or its first one, when ``new``) and stage it for search.

        The derived properties (id, create and modified dates) are not stored: they are the record's
        fields, so a test that passes ``createdate`` or the modified-date property sets those fields.
        """
        with self.lock:
            table = self._records.setdefault(otype.api_name, {})
            old = table.get(object_id)
            if new and old is not None:
                raise ValueError(f"{otype.api_name}/{object_id} already exists")
            values = {name: as_property(value) for name, value in properties.items()}
            values.pop("hs_object_id", None)
            created_text = values.pop(created_property(otype), "")
            modified_text = values.pop(otype.modified_property, "")
            created = parse_ms_or_none(created_text) if created_text else created_ms
            at_ms = (parse_ms_or_none(modified_text) if modified_text else None) or at_ms
            merged = {**(old.properties if old else {}), **values}
            if created is None:
                created = old.created_ms if old else at_ms
            kept = {name: value for name, value in merged.items() if value != ""}
            record = Record(object_id, kept, created, at_ms, source, old, user_id=user_id)
            table[object_id] = record
            if old is None:
                bisect.insort(self._ids.setdefault(otype.api_name, []), int(object_id))
            self.index(otype).stage(record)
            if emit and self.listener is not None:
                self._notify(_write_changes(otype, record, old, values))
            return record

    def find_many(self, otype: ObjectType, keys: Iterable[str], *, archived: bool = False,
                  id_property: str | None = None, follow_merges: bool = True) -> dict[str, Record]:
        """The record each key names now: by id (following merges unless told not to) or by the
        value of a unique property. Only archived records when ``archived``, like HubSpot."""
        with self.lock:
            table = self._records.get(otype.api_name, {})
            if id_property not in (None, "hs_object_id"):
                by_value = {value.lower(): r for r in table.values()
                            if (value := r.properties.get(id_property))}
                found = {key: by_value.get(str(key).lower()) for key in keys}
            else:
                moved = self._merged_into.get(otype.api_name, {}) if follow_merges else {}
                found = {key: table.get(moved.get(key, key)) for key in keys}
            return {key: r for key, r in found.items()
                    if r is not None and (r.archived_ms is not None) == archived}

    def find(self, otype: ObjectType, object_id: str, *, archived: bool = False) -> Record | None:
        """One record by id, following merges."""
        return self.find_many(otype, [object_id], archived=archived).get(object_id)

    def has(self, otype: ObjectType, object_id: str) -> bool:
        """Whether the id names a record here, archived or merged away included."""
        with self.lock:
            return object_id in self._records.get(otype.api_name, {}) or \
                object_id in self._merged_into.get(otype.api_name, {})

    def archive(self, otype: ObjectType, object_id: str, at_ms: int) -> Record | None:
        """Soft-delete: out of reads without ``archived=true`` and out of search, at once."""
        with self.lock:
            record = self.find(otype, object_id)
            if record is None:
                return None
            archived = replace(record, archived_ms=at_ms)
            self._records[otype.api_name][record.id] = archived
            self.index(otype).drop(record.id)
            self._notify([Change("deletion", otype, record.id, {"changeFlag": "DELETED"})])
            return archived

    def restore(self, otype: ObjectType, object_id: str, at_ms: int | None = None) -> Record | None:
        """Take a record out of the recycling bin (HubSpot's UI can, within 90 days): readable again,
        modified at ``at_ms`` (default: its last modification), back in search."""
        with self.lock:
            record = self.find(otype, object_id, archived=True)
            if record is None:
                return None
            restored = replace(record, archived_ms=None, updated_ms=at_ms or record.updated_ms, previous=record)
            self._records[otype.api_name][record.id] = restored
            self.index(otype).stage(restored)
            self._notify([Change("restore", otype, record.id)])
            return restored

    def purge(self, otype: ObjectType, object_id: str) -> Record | None:
        """GDPR delete: the record and its associations are gone for good, archived reads included (no
        archive, no redirect); HubSpot sends a privacyDeletion and a deletion event
        (https://developers.hubspot.com/docs/api/webhooks)."""
        with self.lock:
            record = self.find(otype, object_id) or self.find(otype, object_id, archived=True)
            if record is None:
                return None
            del self._records[otype.api_name][record.id]
            ids = self._ids[otype.api_name]
            del ids[bisect.bisect_left(ids, int(record.id))]
            self.index(otype).drop(record.id)
            for (source, target), links in self._links.items():
                if source == otype.api_name:
                    links.pop(record.id, None)
                if target == otype.api_name:
                    for linked in links.values():
                        linked.pop(record.id, None)
            self._notify([Change("privacyDeletion", otype, record.id),
                          Change("deletion", otype, record.id, {"changeFlag": "DELETED"})])
            return record

    def unassociate(self, from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str) -> None:
        """Remove every association between two records, both ways."""
        with self.lock:
            self._links.get((from_type.api_name, to_type.api_name), {}).get(from_id, {}).pop(to_id, None)
            self._links.get((to_type.api_name, from_type.api_name), {}).get(to_id, {}).pop(from_id, None)

    def merge(self, otype: ObjectType, primary_id: str, merged_id: str, new_id: str,
              at_ms: int) -> Record | None:
        """HubSpot's merge since 2024: a new record with a new id; both old ids resolve to it and its
        ``hs_merged_object_ids`` lists them; associations of both move to it."""
        with self.lock:
            primary, merged = self.find(otype, primary_id), self.find(otype, merged_id)
            if primary is None or merged is None or primary.id == merged.id:
                return None
            olds = (primary.id, merged.id)
            earlier = [i for r in (primary, merged)
                       for i in r.properties.get("hs_merged_object_ids", "").split(";")]
            properties = {**merged.properties, **primary.properties,
                          "hs_merged_object_ids": ";".join([i for i in earlier if i] + list(olds))}
            table, ids, index = self._records[otype.api_name], self._ids[otype.api_name], self.index(otype)
            for old in olds:
                del table[old]
                del ids[bisect.bisect_left(ids, int(old))]
                index.drop(old)
            moved = self._merged_into.setdefault(otype.api_name, {})
            for old, target in moved.items():
                if target in olds:
                    moved[old] = new_id
            moved.update(dict.fromkeys(olds, new_id))
            self._move_links(otype.api_name, olds, new_id)
            record = self.write(otype, new_id, properties, at_ms=at_ms, source="CRM_UI", new=True,
                                created_ms=min(primary.created_ms, merged.created_ms), emit=False)
            moved_count = len(set(merged.properties) - set(primary.properties))
            self._notify([Change("merge", otype, primary.id, {
                "primaryObjectId": int(primary.id), "mergedObjectIds": [int(merged.id)],
                "newObjectId": int(new_id), "numberOfPropertiesMoved": moved_count})])
            return record

    def _move_links(self, api_name: str, olds: tuple[str, ...], new_id: str) -> None:
        for (source, target), table in self._links.items():
            if source == api_name:
                for old in olds:
                    for to_id, types in table.pop(old, {}).items():
                        table.setdefault(new_id, {}).setdefault(to_id, types)
            if target == api_name:
                for targets in table.values():
                    for old in olds:
                        if old in targets:
                            targets.setdefault(new_id, targets.pop(old))

    def associate(self, from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str,
                  type_id: int | None = None, label: str | None = None) -> None:
        """Link two records both ways with the default types; ``type_id`` adds a labeled type one way."""
        with self.lock:
            linked = self.links(from_type, to_type, from_id)
            forward = self._link(from_type.api_name, from_id, to_type.api_name, to_id)
            if all(str(other) != str(to_id) for other, _ in linked):
                self._notify([Change("associationChange", from_type, from_id, {"to": to_type, "to_id": to_id}),
                              Change("associationChange", to_type, to_id, {"to": from_type, "to_id": from_id})])
            if type_id is not None and all(t["typeId"] != type_id for t in forward):
                category = "HUBSPOT_DEFINED" if type_id in _HUBSPOT_DEFINED else "USER_DEFINED"
                forward.append({"category": category, "typeId": type_id, "label": label})
            self._link(to_type.api_name, to_id, from_type.api_name, from_id)

    def _link(self, from_api: str, from_id: str, to_api: str, to_id: str) -> Types:
        types = self._links.setdefault((from_api, to_api), {}).setdefault(from_id, {}).setdefault(to_id, [])
        if not types:
            types.append({"category": "HUBSPOT_DEFINED", "typeId": default_association(from_api, to_api),
                          "label": None})
        return types

    def links(self, from_type: ObjectType, to_type: ObjectType, from_id: str) -> list[tuple[int, Types]]:
        """(to id, association types) of one record, ascending; archived records have none."""
        with self.lock:
            moved = self._merged_into.get(from_type.api_name, {}).get(from_id, from_id)
            source = self._records.get(from_type.api_name, {}).get(moved)
            if source is not None and source.archived_ms is not None:
                return []
            targets = self._records.get(to_type.api_name, {})
            linked = self._links.get((from_type.api_name, to_type.api_name), {}).get(moved, {})
            return sorted((int(to_id), [dict(t) for t in types]) for to_id, types in linked.items()
                          if to_id not in targets or targets[to_id].archived_ms is None)

    def page(self, otype: ObjectType, after: int, limit: int,
             archived: bool) -> tuple[list[Record], str | None]:
        """The list endpoint: up to ``limit`` records from id ``after`` on, and the next page's first id."""
        with self.lock:
            ids, table = self._ids.get(otype.api_name, []), self._records.get(otype.api_name, {})
            out: list[Record] = []
            position = bisect.bisect_left(ids, after)
            while position < len(ids) and len(out) <= limit:
                record = table[str(ids[position])]
                position += 1
                if (record.archived_ms is not None) == archived:
                    out.append(record)
            return out[:limit], (out[limit].id if len(out) > limit else None)


def _write_changes(otype: ObjectType, record: Record, old: Record | None, written: dict[str, str]) -> list[Change]:
    """A creation (with a propertyChange per property it was given), or one propertyChange per
    property whose value the write changed ("" when it cleared it)."""
    if old is None:
        return [Change("creation", otype, record.id, {"changeFlag": "CREATED"}),
                *(Change("propertyChange", otype, record.id, {"propertyName": name, "propertyValue": value})
                  for name, value in record.properties.items())]
    return [Change("propertyChange", otype, record.id, {"propertyName": name, "propertyValue": value})
            for name in written
            if (value := record.properties.get(name, "")) != old.properties.get(name, "")]


class Portals:
    """Every portal's Store (created on first use) and the record ids they share."""

    def __init__(self, search_lag: float) -> None:
        self.ids = IdAllocator()
        self._lag = search_lag
        self._stores: dict[int | None, Store] = {}
        self._lock = threading.Lock()
        self._listener: Callable[[int | None, list[Change]], None] | None = None

    def listen(self, listener: Callable[[int | None, list[Change]], None] | None) -> None:
        """Tell ``listener`` (portal id, changes) of every change in every portal; None: stop telling.
        Without one, writes do not even work out their changes (benchmarks write a lot)."""
        with self._lock:
            self._listener = listener
            for portal_id, store in self._stores.items():
                store.listener = None if listener is None else functools.partial(listener, portal_id)

    def get(self, portal_id: int | None) -> Store:
        """The store of one portal; None is the portal of tokens the fake knows no hub id for."""
        with self._lock:
            if portal_id not in self._stores:
                store = self._stores[portal_id] = Store(self._lag)
                if self._listener is not None:
                    store.listener = functools.partial(self._listener, portal_id)
            return self._stores[portal_id]

    def holding(self, object_type: str, object_id: str | int, portal_id: int | None) -> Store:
        """The store a test helper acts on: the given portal's, else whichever holds the id (the
        default portal first), else the default portal's."""
        if portal_id is None:
            otype = lookup(object_type)
            with self._lock:
                stores = sorted(self._stores.items(), key=lambda item: item[0] is not None)
            portal_id = next((p for p, s in stores if s.has(otype, str(object_id))), None)
        return self.get(portal_id)
