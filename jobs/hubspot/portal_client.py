"""``event.hubspot``: the worker's API client bound to the event's portal, with write-backs.

Handlers get the same client the enrichment uses (one shared rate budget, urllib3 retries, OAuth
tokens refreshed under a lock) with the portal filled in, so a handler of portal A can never write
with portal B's token. Reads: ``get``, ``batch_read``, ``search``. Writes: ``create``, ``update``,
``batch_update``, ``associate``; updates and associations are idempotent and retried like reads,
while a create is retried only when the connection never reached HubSpot (a retried create could
make two records): guard creates with ``event.lock(...)`` and a search for the record first.

Errors are the HubSpotAPIError tree; a handler that lets RateLimited escape is retried after the
wait HubSpot asked for, without spending one of its retries.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jobs.hubspot.client import HubSpotClient
from webhook_service import objects

#: HubSpot-defined unlabeled association type ids, for ``create(associations={...})`` (table in
#: https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide).
DEFAULT_ASSOCIATION_TYPES = {
    ("contacts", "companies"): 279, ("companies", "contacts"): 280, ("contacts", "deals"): 4,
    ("deals", "contacts"): 3, ("deals", "companies"): 341, ("companies", "deals"): 342,
    ("contacts", "tickets"): 15, ("tickets", "contacts"): 16, ("tickets", "companies"): 339,
    ("companies", "tickets"): 340,
}
BATCH = 100


class PortalClient:
    """HubSpotClient calls with ``portal_id`` fixed to one portal."""

    def __init__(self, client: HubSpotClient, portal_id: int) -> None:
        self.client, self.portal_id = client, portal_id

    def __repr__(self) -> str:
        return f"PortalClient(portal_id={self.portal_id})"

    # -- reads -------------------------------------------------------------------------------------
    def get(self, object_type: str, object_id: str | int, properties: Iterable[str] = ()) -> dict | None:
        """One record (merges followed), or None when it does not exist."""
        return self.client.get(object_type, str(object_id), list(properties), portal_id=self.portal_id)

    def batch_read(self, object_type: str, ids: Iterable[str | int], properties: Iterable[str] = ()) -> dict:
        """Records by requested id (None for missing ones), 100 ids a call."""
        return self.client.batch_read(object_type, [str(i) for i in ids], list(properties), portal_id=self.portal_id)

    def search(self, object_type: str, body: dict) -> dict:
        """One page of CRM search (counted in the 5-per-second search budget)."""
        return self.client.search(object_type, body, portal_id=self.portal_id)

    # -- writes ------------------------------------------------------------------------------------
    def create(self, object_type: str, properties: Mapping[str, Any],
               associations: Mapping[str, Iterable[str | int]] | list[dict] | None = None) -> dict:
        """Create a record; ``associations`` maps a type to ids (``{"companies": ["9"]}``, HubSpot's
        default unlabeled types) or is HubSpot's own ``associations`` list, passed unchanged."""
        body: dict[str, Any] = {"properties": dict(properties)}
        if associations:
            body["associations"] = associations if isinstance(associations, list) else \
                _association_inputs(object_type, associations)
        return self.client.request("POST", self.client.objects_path(object_type), portal_id=self.portal_id,
                                   json=body, idempotent=False).json()

    def update(self, object_type: str, object_id: str | int, properties: Mapping[str, Any]) -> dict:
        """Change some properties of one record; returns the record."""
        return self.client.request("PATCH", f"{self.client.objects_path(object_type)}/{object_id}",
                                   portal_id=self.portal_id, json={"properties": dict(properties)}).json()

    def batch_update(self, object_type: str, updates: Mapping[str | int, Mapping[str, Any]]) -> list[dict]:
        """Change properties of many records, ``{id: {property: value}}``, 100 a call; returns the records.
        HubSpot refuses merged-away ids here; use ``update`` for those
        (https://developers.hubspot.com/docs/api-reference/legacy/crm/using-object-apis)."""
        inputs = [{"id": str(i), "properties": dict(p)} for i, p in updates.items()]
        results: list[dict] = []
        for start in range(0, len(inputs), BATCH):
            response = self.client.request("POST", self.client.objects_path(object_type) + "/batch/update",
                                           portal_id=self.portal_id, json={"inputs": inputs[start:start + BATCH]},
                                           ok_statuses=(207,))
            results.extend(response.json().get("results", []))
        return results

    def associate(self, from_type: str, from_id: str | int, to_type: str, to_id: str | int) -> None:
        """Link two records with HubSpot's default (unlabeled) association, both ways."""
        a, b = objects.lookup(from_type).api_name, objects.lookup(to_type).api_name
        version = "v4" if self.client.config.api_version == "v3" else self.client.config.api_version
        prefix = "/crm/v4/objects" if version == "v4" else f"/crm/objects/{version}"
        self.client.request("PUT", f"{prefix}/{a}/{from_id}/associations/default/{b}/{to_id}",
                            portal_id=self.portal_id)


def _association_inputs(object_type: str, associations: Mapping[str, Iterable[str | int]]) -> list[dict]:
    source = objects.lookup(object_type).api_name
    inputs = []
    for to_type, ids in associations.items():
        target = objects.lookup(to_type).api_name
        type_id = DEFAULT_ASSOCIATION_TYPES.get((source, target))
        if type_id is None:
            raise ValueError(f"no default association type from {source} to {target} is known: pass HubSpot's "
                             f"associations list to create(), or call associate() after creating")
        inputs += [{"to": {"id": str(i)}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                     "associationTypeId": type_id}]} for i in ids]
    return inputs
