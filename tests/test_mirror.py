"""The Postgres mirror: rows follow HubSpot through creations, changes, deletions, merges, restores and
association changes; a row never goes back in time (the version guard is in SQL)."""
from __future__ import annotations

from webhook_service import Router
from webhook_service.testing import make_event

from .mirror_support import links, process, query, row


def test_created_records_become_rows_with_every_property_and_their_associations(mirror_config, redis, hubspot):
    # Given two contacts and a company in HubSpot, associated
    hubspot.add("contacts", 1, {"email": "ada@example.com", "firstname": "Ada"})
    hubspot.add("contacts", 2, {"email": "grace@example.com"})
    hubspot.add("companies", 3001, {"name": "Engines"})
    hubspot.associate("contacts", 1, "companies", 3001)
    # When their creation webhooks are processed by a worker with the mirror on
    process(mirror_config, redis, [make_event("contact.creation", 1), make_event("contact.creation", 2),
                                   make_event("company.creation", 3001)])
    # Then each is a row holding HubSpot's properties and version, and the association is a row too
    ada = row(mirror_config, "contacts", 1)
    assert ada is not None and ada["properties"]["email"] == "ada@example.com"
    assert ada["properties"]["firstname"] == "Ada" and not ada["archived"] and ada["version"] is not None
    assert row(mirror_config, "companies", 3001)["properties"]["name"] == "Engines"
    assert links(mirror_config, "contacts", 1) == {("companies", 3001, 279, None)}
    assert links(mirror_config, "companies", 3001) == {("contacts", 1, 280, None)}


def test_the_users_handlers_run_beside_the_mirror(mirror_config, redis, hubspot):
    # Given a user's handler for contact creations and the mirror on
    hubspot.add("contacts", 5, {"email": "x@example.com"})
    seen = []
    router = Router()
    router.add(seen.append, "contact.creation", name="welcome")
    # When a creation is processed
    process(mirror_config, redis, [make_event("contact.creation", 5)], router)
    # Then both ran: the user's handler got its event and the row exists
    assert [e.object_id for e in seen] == ["5"]
    assert row(mirror_config, "contacts", 5) is not None
    assert query(mirror_config, "SELECT version FROM {s}.schema_version") == [{"version": 1}]
