"""Fetch what a job's handlers need in as few HubSpot calls as the batch endpoints allow.

Changes are grouped by object first (ten changes to one deal are one fetch), then every record of
one (portal, type) is read in calls of 100 ids with the union of the properties its handlers
declared, and every declared association type in v4 batch calls of 1,000 ids. Objects whose latest
change is a deletion are not fetched at all: their record is None. So are objects of a type hubhook
has no API path for (a classic subscription type it does not know, such as ``appointment.creation``);
types named by a type id or a ``p_`` name (``0-421``, ``2-123``, ``p_widgets``) are read through
the generic CRM objects API, which takes those in its paths.

A HubSpot error fails only what it concerns: a 403 MISSING_SCOPES or a 4xx fails that (portal,
type) group; a 429, a 5xx after the client's retries or a missing token fails the rest of that
portal's groups, without further calls. ``fetch_groups`` reports those failures per object so the
job can dispatch everything else and hand the failed objects on (rescheduled or parked).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from jobs.hubspot.client import HubSpotClient
from webhook_service import objects
from webhook_service.errors import (
    HubSpotAPIError,
    NoToken,
    RateLimited,
    TransientAPIError,
)
from webhook_service.filters import PREVIOUS_FIELD
from webhook_service.router import Handler, object_name

GONE = ("deletion", "privacyDeletion")


@dataclass
class ObjectChanges:
    """All changes of one object in one job, oldest first."""

    portal_id: int
    object_type: str
    object_id: str
    changes: list[dict] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.portal_id, self.object_type, self.object_id)

    @property
    def deleted(self) -> bool:
        return self.changes[-1]["subscriptionType"].split(".", 1)[1] in GONE

    @property
    def merged_ids(self) -> list[str]:
        return [str(i) for c in self.changes for i in c.get("mergedObjectIds", ())]


@dataclass
class Enrichment:
    """What was fetched for one object."""

    record: dict | None = None
    associations: dict[str, list[str]] = field(default_factory=dict)
    #: Per association type name, the association types (id, label, category) of each associated id.
    association_types: dict[str, dict[str, list[dict]]] = field(default_factory=dict)


def group_changes(events: Iterable[dict]) -> list[ObjectChanges]:
    """Group validated events by (portal, object type, object id), each group ordered by occurredAt."""
    groups: dict[tuple[int, str, str], ObjectChanges] = {}
    for event in events:
        name = object_name(event)
        if name is None:  # the receiver drops these (objects.split_routable); never a key or a path here
            continue
        item = ObjectChanges(int(event["portalId"]), name, str(event["objectId"]))
        groups.setdefault(item.key, item).changes.append(event)
    for item in groups.values():
        item.changes.sort(key=lambda c: (c["occurredAt"], c.get("eventId", 0)))
    return list(groups.values())


def fetch(client: HubSpotClient, work: list[tuple[ObjectChanges, list[Handler]]]) -> dict[tuple, Enrichment]:
    """Read records and declared associations for every object some handler will see; raise the first
    HubSpot error."""
    result, failed = fetch_groups(client, work)
    if failed:
        raise next(iter(failed.values()))
    return result


def fetch_groups(client: HubSpotClient, work: list[tuple[ObjectChanges, list[Handler]]]
                 ) -> tuple[dict[tuple, Enrichment], dict[tuple, HubSpotAPIError]]:
    """Like ``fetch``, but a failing (portal, type) group fails only its own objects: returns the
    enrichments of the objects fetched and the error of each object that could not be."""
    result = {item.key: Enrichment() for item, _ in work}
    records: dict[tuple[int, str], set[str]] = defaultdict(set)
    properties: dict[tuple[int, str], set[str]] = defaultdict(set)
    links: dict[tuple[int, str, str], set[str]] = defaultdict(set)
    history: dict[tuple[int, str], set[str]] = defaultdict(set)   # for from_= filters only
    for item, handlers in work:
        if item.deleted or not objects.is_known(item.object_type):  # unknown plain names have no API path
            continue
        scope = (item.portal_id, item.object_type)
        records[scope].add(item.object_id)
        for handler in handlers:
            properties[scope].update(handler.properties)
            if handler.history_properties and any(handler.matches(c) and PREVIOUS_FIELD not in c for c in item.changes):
                history[scope].update(handler.history_properties)   # polled changes carry their old value
            for name in handler.associations:
                links[(*scope, name)].add(item.object_id)
        if any(h.properties for h in handlers):
            properties[scope].update(c["propertyName"] for c in item.changes if c.get("propertyName"))
    failed_groups: dict[tuple[int, str], HubSpotAPIError] = {}
    stopped: dict[int, HubSpotAPIError] = {}
    for portal, object_type in sorted(records):
        if portal in stopped:
            failed_groups[(portal, object_type)] = stopped[portal]
            continue
        try:
            _fetch_group(client, result, portal, object_type, records[(portal, object_type)],
                         properties[(portal, object_type)],
                         {n: ids for (p, t, n), ids in links.items() if (p, t) == (portal, object_type)},
                         history=history[(portal, object_type)])
        except HubSpotAPIError as exc:
            failed_groups[(portal, object_type)] = exc
            if isinstance(exc, (RateLimited, TransientAPIError, NoToken)):
                stopped[portal] = exc
    failed = {item.key: failed_groups[item.key[:2]] for item, _ in work
              if not item.deleted and item.key[:2] in failed_groups}
    for item, handlers in work:  # every declared association type is present, even when empty
        for handler in handlers:
            for name in handler.associations:
                result[item.key].associations.setdefault(name, [])
    return {k: v for k, v in result.items() if k not in failed}, failed


def _fetch_group(client: HubSpotClient, result: dict[tuple, Enrichment], portal: int, object_type: str,
                 ids: set[str], properties: set[str], links: dict[str, set[str]], *,
                 history: AbstractSet[str] = frozenset()) -> None:
    for object_id, record in _read(client, portal, object_type, sorted(ids), properties, history):
        result[(portal, object_type, object_id)].record = record
    for name, linked in sorted(links.items()):
        types: dict[str, dict[str, list[dict]]] = {}
        found = client.batch_associations(object_type, name, sorted(linked), portal_id=portal, types=types)
        for object_id in linked:
            result[(portal, object_type, object_id)].associations[name] = found.get(object_id, [])
            result[(portal, object_type, object_id)].association_types[name] = types.get(object_id, {})


def _read(client: HubSpotClient, portal: int, object_type: str, ids: list[str],
          properties: set[str], history: AbstractSet[str] = frozenset()) -> Iterable[tuple[str, dict | None]]:
    if object_type == "conversation":  # threads have no batch endpoint
        return ((i, client.get_thread(i, portal_id=portal)) for i in ids)
    if history:
        return client.batch_read(object_type, ids, sorted(properties), portal_id=portal,
                                 history=sorted(history)).items()
    return client.batch_read(object_type, ids, sorted(properties), portal_id=portal).items()
