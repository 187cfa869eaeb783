"""Request parsing and HubSpot-shaped responses shared by the fake's route modules.

Routes stay short and every one validates the same way HubSpot does: a bad object type, body,
batch size or number is a 400 VALIDATION_ERROR (raised as ValidationFailed), a missing record a
404 OBJECT_NOT_FOUND, a partial batch a 207.
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from webhook_service.objects import ObjectType, lookup
from webhook_service.testing.fake_hubspot.shapes import ValidationFailed, error_body, iso, now_ms


def object_type(name: str) -> ObjectType:
    """The type a path names ("contacts", "0-1", "2-123"), or HubSpot's 400."""
    try:
        return lookup(name)
    except KeyError:
        raise ValidationFailed(f"Unable to infer object type from: {name}") from None


def json_body() -> dict[str, Any]:
    """The request's JSON object (HubSpot parses it whatever the content type says)."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("Invalid input JSON: expected an object")
    return body


def batch_inputs(body: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """A batch body's ``inputs``, refused above HubSpot's per-endpoint limit."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
        raise ValidationFailed("inputs must be a list of objects")
    if len(inputs) > limit:
        raise ValidationFailed(f"Batch input of {len(inputs)} exceeds the limit of {limit} inputs")
    return inputs


def properties_of(item: dict[str, Any]) -> dict[str, Any]:
    """A write input's ``properties`` object."""
    properties = item.get("properties")
    if not isinstance(properties, dict):
        raise ValidationFailed("properties must be an object of property name to value")
    return properties


def whole_number(text: Any, low: int, high: int | None, name: str) -> int:
    """A non-negative integer parameter within bounds."""
    if not str(text).isdigit() or int(text) < low or (high is not None and int(text) > high):
        raise ValidationFailed(f"{name} must be a whole number from {low}" + (f" to {high}" if high else ""))
    return int(text)


def csv_arg(name: str) -> list[str] | None:
    """A comma-list query parameter (repeatable), or None when absent."""
    raw = request.args.getlist(name)
    return [part.strip() for value in raw for part in value.split(",") if part.strip()] if raw else None


def flag_arg(name: str) -> bool:
    """A boolean query parameter: only the literal ``true`` counts (``?archived=1`` got a 404:
    https://github.com/HubSpot/hubspot-api-php/issues/98)."""
    return request.args.get(name, "false") == "true"


def not_found(object_id: str) -> Response:
    """HubSpot's 404 for an unknown or archived record id."""
    return json_response(error_body("Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                                    context={"id": [object_id]}), 404)


def missing_error(otype: ObjectType, keys: list[str]) -> dict[str, Any]:
    """The one batch error HubSpot lists for all the ids it could not find."""
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {otype.name.upper()} objects, they may be deleted or not exist. "
                       "Check that ids are valid.", "context": {"ids": keys}}


def batch_response(results: list, errors: list, started: str, ok: int = 200) -> Response:
    """HubSpot's batch response: ``ok`` (200, or 201 for creates), 207 with ``numErrors`` on partials."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results}
    if errors:
        body.update(numErrors=len(errors), errors=errors)
    body.update(startedAt=started, completedAt=iso(now_ms()))
    return json_response(body, 207 if errors else ok)


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """``body`` as JSON with ``status``."""
    response = jsonify(body)
    response.status_code = status
    return response
