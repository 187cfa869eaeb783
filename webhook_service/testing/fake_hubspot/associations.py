"""The fake's associations v4 routes: batch read and default-association create.

hubhook's workers fetch associations in one batch read per type pair, so this is where the 207
"no associations" partials and the per-input paging (500 per record) have to look like
HubSpot's (https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide).
"""
from __future__ import annotations

from typing import Any

from flask import Response, g

from webhook_service.objects import ObjectType, lookup
from webhook_service.testing.fake_hubspot.http import (
    batch_inputs,
    batch_response,
    json_body,
    not_found,
    object_type,
    whole_number,
)
from webhook_service.testing.fake_hubspot.shapes import ValidationFailed, iso, now_ms
from webhook_service.testing.fake_hubspot.store import DEFAULT_ASSOCIATION, default_association

BATCH_LIMIT, PAGE = 1000, 500
_TARGET_OF = {(source, type_id): target for (source, target), type_id in DEFAULT_ASSOCIATION.items()}


def batch_read(obj: str, to: str, ver: str = "") -> Response:
    """Each input's associated ids, 500 per page; inputs with none become 207 errors."""
    source, target, started = object_type(obj), object_type(to), iso(now_ms())
    results, errors = [], []
    for item in batch_inputs(json_body(), BATCH_LIMIT):
        from_id, offset = str(item.get("id")), whole_number(item.get("after") or "0", 0, None, "after")
        linked = g.store.links(source, target, from_id)
        if not linked:
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                           "message": f"No {target.name} is associated with {source.name} {from_id}.",
                           "context": {"fromObjectId": [from_id]}})
            continue
        page = linked[offset:offset + PAGE]
        entries = [{"toObjectId": to_id, "associationTypes": types} for to_id, types in page]
        result: dict[str, Any] = {"from": {"id": from_id}, "to": entries}
        if offset + PAGE < len(linked):
            result["paging"] = {"next": {"after": str(offset + PAGE)}}
        results.append(result)
    return batch_response(results, errors, started)


def create_default(obj: str, oid: str, to: str, to_id: str, ver: str = "") -> Response:
    """``PUT .../associations/default/...``: link both ways with the unlabeled default types."""
    source, target, started = object_type(obj), object_type(to), iso(now_ms())
    for otype, key in ((source, oid), (target, to_id)):
        if g.store.find(otype, key) is None:
            return not_found(key)
    g.store.associate(source, oid, target, to_id)
    results = [{"from": {"id": a}, "to": {"id": b},
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                    "associationTypeId": default_association(x.api_name, y.api_name)}}
               for a, b, x, y in ((oid, to_id, source, target), (to_id, oid, target, source))]
    return batch_response(results, [], started)


def create_inputs(otype: ObjectType, item: dict[str, Any]) -> list[tuple[ObjectType, str]]:
    """(target type, id) of a create input's ``associations``; the target type follows from the type id."""
    targets = []
    for link in item.get("associations") or []:
        type_ids = [t.get("associationTypeId") for t in link.get("types") or []]
        known = [_TARGET_OF[(otype.api_name, t)] for t in type_ids if (otype.api_name, t) in _TARGET_OF]
        if not known:
            raise ValidationFailed(f"association types {type_ids} from {otype.api_name} are unknown "
                                   "to the fake")
        target = known[0]
        targets.append((lookup(target), str((link.get("to") or {}).get("id"))))
    return targets
