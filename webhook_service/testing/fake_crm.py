"""The fake HubSpot's routes: CRM objects, associations v4, conversations threads and OAuth tokens.

Each route is registered under both spellings HubSpot serves in 2026 (FACTS.md 0, 3.10): the legacy
``/crm/v3/...`` and the dated ``/crm/objects/2026-09/...``. Views read the calling portal's store
from ``flask.g.store`` (set by FakeHubSpot's request gate) and answer in HubSpot's shapes.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Flask, Response, g, jsonify, request
from werkzeug.routing import BaseConverter

from webhook_service.objects import ObjectType, lookup
from webhook_service.testing.fake_auth import TokenBook
from webhook_service.testing.fake_search import search
from webhook_service.testing.fake_shapes import ValidationFailed, error_body, iso, now_ms, render
from webhook_service.testing.fake_store import DEFAULT_ASSOCIATION, default_association

BATCH_LIMIT, ASSOCIATION_BATCH_LIMIT, ASSOCIATION_PAGE = 100, 1000, 500
_TYPE_OF_ASSOCIATION = {(source, type_id): target
                        for (source, target), type_id in DEFAULT_ASSOCIATION.items()}


class DatedVersion(BaseConverter):
    """The ``YYYY-MM`` segment of HubSpot's date-versioned paths."""

    regex = r"\d{4}-\d{2}"


def register(app: Flask, tokens: TokenBook, token_lifetime: Callable[[], int]) -> None:
    """Add every route of the fake to ``app``."""
    app.url_map.converters["date"] = DatedVersion

    def rule(methods: str, view: Callable[..., Response], *paths: str) -> None:
        for path in paths:
            app.add_url_rule(path, f"{view.__name__}{path}", view, methods=[methods])

    def objects(suffix: str) -> tuple[str, str]:
        return f"/crm/v3/objects/<obj>{suffix}", f"/crm/objects/<date:ver>/<obj>{suffix}"

    def oauth_token(ver: str = "") -> Response:
        status, body = tokens.grant(request.form, token_lifetime())
        return _json(body, status)

    rule("GET", get_one, *objects("/<oid>"))
    rule("PATCH", update_one, *objects("/<oid>"))
    rule("GET", list_page, *objects(""))
    rule("POST", create_one, *objects(""))
    rule("POST", batch_read, *objects("/batch/read"))
    rule("POST", batch_create, *objects("/batch/create"))
    rule("POST", batch_update, *objects("/batch/update"))
    rule("POST", search_objects, *objects("/search"))
    rule("POST", associations_read, "/crm/v4/associations/<obj>/<to>/batch/read",
         "/crm/associations/<date:ver>/<obj>/<to>/batch/read")
    rule("PUT", associate_default, "/crm/v4/objects/<obj>/<oid>/associations/default/<to>/<to_id>",
         "/crm/objects/<date:ver>/<obj>/<oid>/associations/default/<to>/<to_id>")
    rule("GET", get_thread, "/conversations/v3/conversations/threads/<tid>",
         "/conversations/conversations/<date:ver>/threads/<tid>")
    rule("POST", oauth_token, "/oauth/v1/token", "/oauth/v3/token", "/oauth/<date:ver>/token")


def get_one(obj: str, oid: str, ver: str = "") -> Response:
    otype = _type(obj)
    found = g.store.find_many(otype, [oid], archived=_flag("archived"),
                              id_property=request.args.get("idProperty"))
    if oid not in found:
        return _not_found(oid)
    return _json(render(found[oid], otype, _csv("properties"), _csv("propertiesWithHistory") or ()))


def list_page(obj: str, ver: str = "") -> Response:
    otype, limit, after = _type(obj), _number(request.args.get("limit", "10"), 1, 100, "limit"), \
        request.args.get("after", "0")
    records, next_id = g.store.page(otype, _number(after, 0, None, "after"), limit, _flag("archived"))
    names, history = _csv("properties"), _csv("propertiesWithHistory") or ()
    out: dict[str, Any] = {"results": [render(r, otype, names, history) for r in records]}
    if next_id:
        query = "&".join(f"{k}={v}" for k, v in {**request.args.to_dict(), "after": next_id}.items())
        out["paging"] = {"next": {"after": next_id, "link": f"{request.base_url}?{query}"}}
    return _json(out)


def batch_read(obj: str, ver: str = "") -> Response:
    otype, body, started = _type(obj), _body(), iso(now_ms())
    keys = [str(item.get("id")) for item in _inputs(body, BATCH_LIMIT)]
    found = g.store.find_many(otype, keys, archived=_flag("archived"), id_property=body.get("idProperty"))
    names, history = body.get("properties"), body.get("propertiesWithHistory") or ()
    results, seen = [], set()
    for key in keys:
        record = found.get(key)
        if record is not None and record.id not in seen:
            seen.add(record.id)
            results.append(render(record, otype, names, history))
    missing = list(dict.fromkeys(key for key in keys if key not in found))
    return _batch(results, [_missing(otype, missing)] if missing else [], started)


def search_objects(obj: str, ver: str = "") -> Response:
    otype = _type(obj)
    with g.store.lock:
        return _json(search(g.store.index(otype), otype, _body()))


def create_one(obj: str, ver: str = "") -> Response:
    otype = _type(obj)
    record = _create(otype, _body())
    return _json(render(record, otype, record.properties), 201)


def update_one(obj: str, oid: str, ver: str = "") -> Response:
    otype, properties = _type(obj), _properties(_body())
    record = g.store.find(otype, oid)
    if record is None:
        return _not_found(oid)
    record = g.store.write(otype, record.id, properties, at_ms=now_ms(), source="INTEGRATION")
    return _json(render(record, otype, properties))


def batch_create(obj: str, ver: str = "") -> Response:
    otype, started = _type(obj), iso(now_ms())
    records = [_create(otype, item) for item in _inputs(_body(), BATCH_LIMIT)]
    return _batch([render(r, otype, r.properties) for r in records], [], started, ok=201)


def batch_update(obj: str, ver: str = "") -> Response:
    """Batch update; merged-away ids are refused, as HubSpot documents (FACTS.md 3.8)."""
    otype, started = _type(obj), iso(now_ms())
    inputs = [(str(item.get("id")), _properties(item)) for item in _inputs(_body(), BATCH_LIMIT)]
    found = g.store.find_many(otype, [key for key, _ in inputs], follow_merges=False)
    results = []
    for key, properties in inputs:
        if key in found:
            record = g.store.write(otype, key, properties, at_ms=now_ms(), source="INTEGRATION")
            results.append(render(record, otype, properties))
    missing = list(dict.fromkeys(key for key, _ in inputs if key not in found))
    return _batch(results, [_missing(otype, missing)] if missing else [], started)


def associations_read(obj: str, to: str, ver: str = "") -> Response:
    source, target, started = _type(obj), _type(to), iso(now_ms())
    results, errors = [], []
    for item in _inputs(_body(), ASSOCIATION_BATCH_LIMIT):
        from_id, offset = str(item.get("id")), _number(item.get("after") or "0", 0, None, "after")
        linked = g.store.links(source, target, from_id)
        if not linked:
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                           "message": f"No {target.name} is associated with {source.name} {from_id}.",
                           "context": {"fromObjectId": [from_id]}})
            continue
        chunk = linked[offset:offset + ASSOCIATION_PAGE]
        result: dict[str, Any] = {"from": {"id": from_id}, "to": [
            {"toObjectId": to_id, "associationTypes": types} for to_id, types in chunk]}
        if offset + ASSOCIATION_PAGE < len(linked):
            result["paging"] = {"next": {"after": str(offset + ASSOCIATION_PAGE)}}
        results.append(result)
    return _batch(results, errors, started)


def associate_default(obj: str, oid: str, to: str, to_id: str, ver: str = "") -> Response:
    source, target, started = _type(obj), _type(to), iso(now_ms())
    for otype, key in ((source, oid), (target, to_id)):
        if g.store.find(otype, key) is None:
            return _not_found(key)
    g.store.associate(source, oid, target, to_id)
    results = [{"from": {"id": a}, "to": {"id": b},
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                    "associationTypeId": default_association(x.api_name, y.api_name)}}
               for a, b, x, y in ((oid, to_id, source, target), (to_id, oid, target, source))]
    return _batch(results, [], started)


def get_thread(tid: str, ver: str = "") -> Response:
    thread = g.store.threads.get(tid)
    if thread is None:
        body = error_body(f"Thread {tid} not found", "OBJECT_NOT_FOUND", context={"threadId": [tid]})
        return _json(body, 404)
    return _json(thread)


def _create(otype: ObjectType, item: dict[str, Any]) -> Any:
    """Create one record from a create input, with its ``associations`` (type inferred from the type id)."""
    properties, links = _properties(item), item.get("associations") or []
    targets = []
    for link in links:
        type_ids = [t.get("associationTypeId") for t in link.get("types") or []]
        target = next((_TYPE_OF_ASSOCIATION[(otype.api_name, t)] for t in type_ids
                       if (otype.api_name, t) in _TYPE_OF_ASSOCIATION), None)
        if target is None:
            raise ValidationFailed(f"association types {type_ids} from {otype.api_name} are unknown "
                                   "to the fake")
        targets.append((lookup(target), str((link.get("to") or {}).get("id"))))
    record = g.store.write(otype, g.new_id(), properties, at_ms=now_ms(), source="INTEGRATION", new=True)
    for target, to_id in targets:
        g.store.associate(otype, record.id, target, to_id)
    return record


def _type(name: str) -> ObjectType:
    try:
        return lookup(name)
    except KeyError:
        raise ValidationFailed(f"Unable to infer object type from: {name}") from None


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("Invalid input JSON: expected an object")
    return body


def _inputs(body: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
        raise ValidationFailed("inputs must be a list of objects")
    if len(inputs) > limit:
        raise ValidationFailed(f"Batch input of {len(inputs)} exceeds the limit of {limit} inputs")
    return inputs


def _properties(item: dict[str, Any]) -> dict[str, Any]:
    properties = item.get("properties")
    if not isinstance(properties, dict):
        raise ValidationFailed("properties must be an object of property name to value")
    return properties


def _number(text: Any, low: int, high: int | None, name: str) -> int:
    if not str(text).isdigit() or int(text) < low or (high is not None and int(text) > high):
        raise ValidationFailed(f"{name} must be a whole number from {low}" + (f" to {high}" if high else ""))
    return int(text)


def _csv(name: str) -> list[str] | None:
    raw = request.args.getlist(name)
    return [p.strip() for value in raw for p in value.split(",") if p.strip()] if raw else None


def _flag(name: str) -> bool:
    return request.args.get(name, "false") == "true"


def _not_found(oid: str) -> Response:
    return _json(error_body("Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                            context={"id": [oid]}), 404)


def _missing(otype: ObjectType, keys: list[str]) -> dict[str, Any]:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {otype.name.upper()} objects, they may be deleted or not exist. "
                       "Check that ids are valid.", "context": {"ids": keys}}


def _batch(results: list, errors: list, started: str, ok: int = 200) -> Response:
    """HubSpot's batch response: 200 (or 201 for creates), 207 with ``numErrors``/``errors`` on partials."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results}
    if errors:
        body.update(numErrors=len(errors), errors=errors)
    body.update(startedAt=started, completedAt=iso(now_ms()))
    return _json(body, 207 if errors else ok)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
