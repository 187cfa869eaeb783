"""The fake HubSpot's routes: CRM objects (read, list, batch, search, writes), associations v4,
conversations threads and OAuth tokens.

Each route is registered under both spellings HubSpot serves in 2026 (dated versions:
https://developers.hubspot.com/docs/developer-tooling/platform/versioning): the legacy
``/crm/v3/...`` and the dated ``/crm/objects/2026-09/...``. Views read the calling portal's store
from ``flask.g.store`` (set by FakeHubSpot's request gate) and answer in HubSpot's shapes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.routing import BaseConverter

from webhook_service.objects import ObjectType, lookup
from webhook_service.testing.fake_hubspot import associations
from webhook_service.testing.fake_hubspot.auth import TokenBook
from webhook_service.testing.fake_hubspot.http import (
    batch_inputs,
    batch_response,
    csv_arg,
    flag_arg,
    json_body,
    json_response,
    missing_error,
    not_found,
    object_type,
    properties_of,
    whole_number,
)
from webhook_service.testing.fake_hubspot.properties import Problem, invalid_values_body, property_definitions
from webhook_service.testing.fake_hubspot.search import search
from webhook_service.testing.fake_hubspot.shapes import (
    Record,
    ValidationFailed,
    error_body,
    iso,
    names_of,
    now_ms,
    render,
)

BATCH_LIMIT = 100
#: A batch read that asks for ``propertiesWithHistory`` takes at most 50 inputs; HubSpot answers more with
#: 400 "The maximum number of inputs supported in a batch request for property histories is 50".
HISTORY_BATCH_LIMIT = 50


class DatedVersion(BaseConverter):
    """The ``YYYY-MM`` segment of HubSpot's date-versioned paths: a version ships every March and
    September (https://developers.hubspot.com/docs/developer-tooling/platform/versioning), so any
    other month is a path HubSpot does not serve."""

    regex = r"\d{4}-(?:03|09)"


def register(app: Flask, tokens: TokenBook, token_lifetime: Callable[[], int]) -> None:
    """Add every route of the fake to ``app``."""
    app.url_map.converters["date"] = DatedVersion

    def rule(method: str, view: Callable[..., Response], *paths: str) -> None:
        for path in paths:
            app.add_url_rule(path, f"{view.__module__}.{view.__name__}:{path}", view, methods=[method])

    def objects(suffix: str) -> tuple[str, str]:
        return f"/crm/v3/objects/<obj>{suffix}", f"/crm/objects/<date:ver>/<obj>{suffix}"

    def oauth_token(ver: str = "") -> Response:
        status, body = tokens.grant(request.form, token_lifetime())
        return json_response(body, status)

    rule("GET", get_one, *objects("/<oid>"))
    rule("PATCH", update_one, *objects("/<oid>"))
    rule("GET", list_page, *objects(""))
    rule("POST", create_one, *objects(""))
    rule("POST", batch_read, *objects("/batch/read"))
    rule("POST", batch_create, *objects("/batch/create"))
    rule("POST", batch_update, *objects("/batch/update"))
    rule("POST", search_objects, *objects("/search"))
    rule("DELETE", archive_one, *objects("/<oid>"))
    rule("POST", batch_archive, *objects("/batch/archive"))
    rule("POST", merge_two, *objects("/merge"))
    rule("POST", gdpr_delete, *objects("/gdpr-delete"))
    rule("POST", associations.batch_read, "/crm/v4/associations/<obj>/<to>/batch/read",
         "/crm/associations/<date:ver>/<obj>/<to>/batch/read")
    default_link = "<obj>/<oid>/associations/default/<to>/<to_id>"
    rule("PUT", associations.create_default, f"/crm/v4/objects/{default_link}",
         f"/crm/objects/<date:ver>/{default_link}")
    rule("GET", get_thread, "/conversations/v3/conversations/threads/<tid>",
         "/conversations/conversations/<date:ver>/threads/<tid>")
    rule("GET", read_properties, "/crm/v3/properties/<obj>", "/crm/properties/<date:ver>/<obj>")
    rule("POST", oauth_token, "/oauth/v1/token", "/oauth/v3/token", "/oauth/<date:ver>/token")


def get_one(obj: str, oid: str, ver: str = "") -> Response:
    """One record; a merged-away id answers with the new record (whose id differs)."""
    otype = object_type(obj)
    found = g.store.find_many(otype, [oid], archived=flag_arg("archived"),
                              id_property=request.args.get("idProperty"))
    if oid not in found:
        return not_found(oid)
    history = csv_arg("propertiesWithHistory") or ()
    record = render(found[oid], otype, csv_arg("properties"), history, _known(otype))
    return json_response(_with_associations(record, otype))


def list_page(obj: str, ver: str = "") -> Response:
    """Records by ascending id; ``paging.next.after`` is the next page's first id."""
    otype = object_type(obj)
    limit = whole_number(request.args.get("limit", "10"), 1, 100, "limit")
    after = whole_number(request.args.get("after", "0"), 0, None, "after")
    records, next_id = g.store.page(otype, after, limit, flag_arg("archived"))
    names, history = csv_arg("properties"), csv_arg("propertiesWithHistory") or ()
    known = _known(otype)
    out: dict[str, Any] = {"results": [_with_associations(render(r, otype, names, history, known), otype)
                                       for r in records]}
    if next_id:
        query = "&".join(f"{k}={v}" for k, v in {**request.args.to_dict(), "after": next_id}.items())
        out["paging"] = {"next": {"after": next_id, "link": f"{request.base_url}?{query}"}}
    return json_response(out)


def batch_read(obj: str, ver: str = "") -> Response:
    """Up to 100 records; each resulting record once (two merged-away ids give one record), 207 for
    the ids not found."""
    otype, body, started = object_type(obj), json_body(), iso(now_ms())
    names, history = names_of(body, "properties"), names_of(body, "propertiesWithHistory") or ()
    inputs = batch_inputs(body, BATCH_LIMIT)
    if history and len(inputs) > HISTORY_BATCH_LIMIT:
        raise ValidationFailed(f"The maximum number of inputs supported in a batch request for property histories "
                               f"is {HISTORY_BATCH_LIMIT}. Please reduce the number of items and try again")
    keys = [str(item.get("id")) for item in inputs]
    found = g.store.find_many(otype, keys, archived=flag_arg("archived"), id_property=body.get("idProperty"))
    results, seen, known = [], set(), _known(otype)
    for key in keys:
        record = found.get(key)
        if record is not None and record.id not in seen:
            seen.add(record.id)
            results.append(render(record, otype, names, history, known))
    missing = list(dict.fromkeys(key for key in keys if key not in found))
    return batch_response(results, [missing_error(otype, missing)] if missing else [], started)


def search_objects(obj: str, ver: str = "") -> Response:
    """CRM search (see fake_search); 400 past the 10,000-result cap."""
    otype = object_type(obj)
    with g.store.lock:
        return json_response(search(g.store.index(otype), otype, json_body(), known=_known(otype)))


def create_one(obj: str, ver: str = "") -> Response:
    """Create a record from ``{"properties", "associations"?}``: 201; 400 for refused property values,
    409 for a contact whose email another contact has."""
    otype, body = object_type(obj), json_body()
    properties = properties_of(body)
    problems = g.store.properties.check(otype, properties)
    if problems:
        return json_response(invalid_values_body(problems, g.portal), 400)
    conflict = _email_conflict(otype, [properties])
    if conflict is not None:
        return conflict
    record = _create(otype, body)
    return json_response(render(record, otype, record.properties), 201)


def update_one(obj: str, oid: str, ver: str = "") -> Response:
    """Update properties; merged-away ids work here (not in batch update), as HubSpot documents."""
    otype, properties = object_type(obj), properties_of(json_body())
    record = g.store.find(otype, oid)
    if record is None:
        return not_found(oid)
    problems = g.store.properties.check(otype, properties)
    if problems:
        return json_response(invalid_values_body(problems, g.portal), 400)
    record = g.store.write(otype, record.id, properties, at_ms=now_ms(), source="INTEGRATION")
    return json_response(render(record, otype, properties))


def batch_create(obj: str, ver: str = "") -> Response:
    """Create up to 100 records: 201. Refused property values fail the whole batch (400), unless the
    inputs carry ``objectWriteTraceId``: then only those inputs fail, reported in a 207 (see
    https://developers.hubspot.com/docs/api-reference/error-handling). A contact email that exists,
    or repeats within the batch, is a 409 for the batch."""
    otype, started = object_type(obj), iso(now_ms())
    inputs = batch_inputs(json_body(), BATCH_LIMIT)
    refused = _refused_inputs(otype, inputs)
    if isinstance(refused, Response):
        return refused
    kept = [item for i, item in enumerate(inputs) if i not in refused]
    conflict = _email_conflict(otype, [properties_of(item) for item in kept])
    if conflict is not None:
        return conflict
    records = [_create(otype, item) for item in kept]
    return batch_response([render(r, otype, r.properties) for r in records], list(refused.values()), started,
                          ok=201)


def batch_update(obj: str, ver: str = "") -> Response:
    """Update up to 100 records; merged-away ids are refused, as HubSpot documents
    (https://developers.hubspot.com/docs/api-reference/legacy/crm/using-object-apis).
    Refused property values are handled as in ``batch_create``."""
    otype, started = object_type(obj), iso(now_ms())
    items = batch_inputs(json_body(), BATCH_LIMIT)
    refused = _refused_inputs(otype, items)
    if isinstance(refused, Response):
        return refused
    inputs = [(str(item.get("id")), properties_of(item)) for i, item in enumerate(items) if i not in refused]
    found = g.store.find_many(otype, [key for key, _ in inputs], follow_merges=False)
    results = []
    for key, properties in inputs:
        if key in found:
            record = g.store.write(otype, key, properties, at_ms=now_ms(), source="INTEGRATION")
            results.append(render(record, otype, properties))
    missing = list(dict.fromkeys(key for key, _ in inputs if key not in found))
    errors = list(refused.values()) + ([missing_error(otype, missing)] if missing else [])
    return batch_response(results, errors, started)


def archive_one(obj: str, oid: str, ver: str = "") -> Response:
    """Move a record to the recycling bin: 204, also for an id that names nothing (HubSpot's answer
    has no body either way: https://developers.hubspot.com/docs/api-reference/legacy/crm/using-object-apis)."""
    g.store.archive(object_type(obj), oid, now_ms())
    return Response(status=204)


def batch_archive(obj: str, ver: str = "") -> Response:
    """Archive up to 100 records by ``{"inputs": [{"id"}]}``: 204."""
    otype = object_type(obj)
    for item in batch_inputs(json_body(), BATCH_LIMIT):
        g.store.archive(otype, str(item.get("id")), now_ms())
    return Response(status=204)


def merge_two(obj: str, ver: str = "") -> Response:
    """``{"primaryObjectId", "objectIdToMerge"}``: the merged record, under a new id since 2024
    (https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies)."""
    otype, body = object_type(obj), json_body()
    primary, other = str(body.get("primaryObjectId") or ""), str(body.get("objectIdToMerge") or "")
    if not primary.isdigit() or not other.isdigit():
        raise ValidationFailed("primaryObjectId and objectIdToMerge must be record ids")
    record = g.store.merge(otype, primary, other, g.new_id(), now_ms())
    if record is None:
        missing = [key for key in (primary, other) if g.store.find(otype, key) is None]
        if missing:
            return not_found(missing[0])
        raise ValidationFailed(f"cannot merge {otype.name} {primary} into itself")
    return json_response(render(record, otype, record.properties))


def gdpr_delete(obj: str, ver: str = "") -> Response:
    """Permanently delete a contact by ``{"objectId", "idProperty"?}``: 204, or 404 when none matches."""
    otype, body = object_type(obj), json_body()
    if otype.api_name != "contacts":
        return json_response(error_body(f"GDPR delete is for contacts, not {otype.api_name}", "VALIDATION_ERROR"),
                             400)
    key = str(body.get("objectId") or "")
    found = g.store.find_many(otype, [key], id_property=body.get("idProperty"))
    if key not in found or g.store.purge(otype, found[key].id) is None:
        return not_found(key)
    return Response(status=204)


def read_properties(obj: str, ver: str = "") -> Response:
    """Every property of a type in the calling portal (the properties API's ``GET``)."""
    otype = object_type(obj)
    return json_response({"results": property_definitions(g.store.properties, otype)})


def get_thread(tid: str, ver: str = "") -> Response:
    """A conversations thread (PublicThread), or 404."""
    thread = g.store.threads.get(tid)
    if thread is None:
        body = error_body(f"Thread {tid} not found", "OBJECT_NOT_FOUND", context={"threadId": [tid]})
        return json_response(body, 404)
    return json_response(thread)


def _known(otype: ObjectType) -> Callable[[str], bool]:
    """Whether the calling portal has a property of this type: reads leave out asked properties it
    lacks, as HubSpot does."""
    return lambda name: g.store.properties.type_of(otype, name) is not None


def _create(otype: ObjectType, item: dict[str, Any]) -> Record:
    """Create one record from a create input, then its associations."""
    properties, targets = properties_of(item), associations.create_inputs(otype, item)
    record = g.store.write(otype, g.new_id(), properties, at_ms=now_ms(), source="INTEGRATION", new=True)
    for target, to_id in targets:
        g.store.associate(otype, record.id, target, to_id)
    return record


def _refused_inputs(otype: ObjectType, inputs: list[dict[str, Any]]) -> Response | dict[int, dict[str, Any]]:
    """The 400 for a batch with refused property values, or (when every refused input carries an
    ``objectWriteTraceId``) the 207 error of each refused input by its position."""
    problems: list[Problem] = []
    errors: dict[int, dict[str, Any]] = {}
    for position, item in enumerate(inputs):
        found = g.store.properties.check(otype, properties_of(item))
        if not found:
            continue
        trace = item.get("objectWriteTraceId")
        if trace is None:
            problems += found
        else:
            body = invalid_values_body(found, g.portal)
            errors[position] = {"status": "error", "category": body["category"], "message": body["message"],
                                "context": {"objectWriteTraceId": [str(trace)]}}
    if problems:
        return json_response(invalid_values_body(problems, g.portal), 400)
    return errors


def _email_conflict(otype: ObjectType, writes: list[dict[str, Any]]) -> Response | None:
    """HubSpot's 409 when a new contact's email belongs to another contact (emails are unique per
    account, compared without case), or to an earlier input of the same batch."""
    if otype.api_name != "contacts":
        return None
    emails = [str(p["email"]).strip().lower() for p in writes if p.get("email")]
    existing = g.store.find_many(otype, emails, id_property="email")
    for position, email in enumerate(emails):
        holder = existing.get(email)
        if holder is not None or email in emails[:position]:
            which = holder.id if holder is not None else "(an earlier input of this batch)"
            body = error_body(f"Contact already exists. Existing ID: {which}", "CONFLICT")
            return json_response(body, 409)
    return None


def _with_associations(out: dict[str, Any], otype: ObjectType) -> dict[str, Any]:
    """Add the ``associations`` the request's ``associations=`` names, as the v3-style object API
    returns them: ``{<type>: {"results": [{"id", "type"}]}}`` per type with any; unknown types are
    ignored, as HubSpot documents for this parameter."""
    wanted = csv_arg("associations")
    if not wanted:
        return out
    found: dict[str, Any] = {}
    for name in dict.fromkeys(wanted):
        try:
            target = lookup(name)
        except KeyError:
            continue
        linked = g.store.links(otype, target, out["id"])
        if linked:
            kind = f"{otype.name}_to_{target.name}"
            found[target.api_name] = {"results": [{"id": str(to_id), "type": kind} for to_id, _ in linked]}
    if found:
        out["associations"] = found
    return out
