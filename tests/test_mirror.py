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


def _guard_writes(config, versions: list[tuple[str, str]]):
    """Write contact 77 once per (updatedAt, email) in the given order, each as its own job's batch."""
    from jobs.mirror import writer
    from jobs.mirror.database import Database
    from jobs.mirror.layout import lookup

    db = Database(config.mirror_url)
    try:
        for updated, email in versions:
            writes = writer.Writes(lookup(config, "contacts"))
            writes.upsert(62515, {"id": "77", "properties": {"email": email}, "createdAt": "2026-01-01T00:00:00Z",
                                  "updatedAt": updated}, writer.now_iso())
            writer.send(db, config.mirror_schema, writes)
    finally:
        db.close()


def test_the_sql_guard_keeps_the_newer_version_whichever_write_comes_last(mirror_config, redis, hubspot):
    # Given the mirror's tables
    from jobs.mirror.handler import install
    install(Router(), mirror_config)
    # When two jobs write contact 77: the newer version first, then an older one fetched earlier
    _guard_writes(mirror_config, [("2026-05-02T10:00:00Z", "new@example.com"),
                                  ("2026-05-01T10:00:00Z", "old@example.com")])
    # Then the newer version stays
    assert row(mirror_config, "contacts", 77)["properties"]["email"] == "new@example.com"
    # And in the other order the newer one replaces the older
    _guard_writes(mirror_config, [("2026-05-01T10:00:00Z", "old@example.com"),
                                  ("2026-05-03T10:00:00Z", "newest@example.com")])
    found = row(mirror_config, "contacts", 77)
    assert found["properties"]["email"] == "newest@example.com"
    assert found["version"].isoformat().startswith("2026-05-03T10:00:00")


def test_a_stale_job_cannot_bring_back_an_older_version(mirror_config, redis, hubspot):
    # Given a contact mirrored at its newest version
    hubspot.add("contacts", 8, {"email": "v1@example.com"}, modified_at_ms=1_700_000_000_000)
    hubspot.update("contacts", 8, {"email": "v2@example.com"}, modified_at_ms=1_700_000_100_000)
    process(mirror_config, redis, [make_event("contact.propertyChange", 8, property="email", value="v2")])
    # When a job that fetched the older version writes after it (the same guard, through the handler path)
    _guard_writes(mirror_config, [("2023-11-14T22:13:20Z", "v1@example.com")])
    # Then the row keeps the newer version
    assert row(mirror_config, "contacts", 8)["properties"]["email"] == "v2@example.com"


def test_deletion_archives_the_row_and_restore_brings_it_back(mirror_config, redis, hubspot):
    # Given a mirrored deal
    hubspot.add("deals", 40, {"dealname": "Big", "amount": 1200})
    process(mirror_config, redis, [make_event("deal.creation", 40)])
    # When it is deleted in HubSpot
    hubspot.archive("deals", 40)
    process(mirror_config, redis, [make_event("deal.deletion", 40)])
    # Then the row is kept, archived, with its last properties
    gone = row(mirror_config, "deals", 40)
    assert gone["archived"] and gone["archived_at"] is not None and gone["properties"]["dealname"] == "Big"
    # When it is restored
    hubspot.restore("deals", 40)
    process(mirror_config, redis, [make_event("deal.restore", 40)])
    # Then the row is live again, refetched
    back = row(mirror_config, "deals", 40)
    assert not back["archived"] and back["archived_at"] is None and back["version"] > gone["version"]


def test_hard_delete_setting_removes_the_row(mirror_config, redis, hubspot):
    import dataclasses
    config = dataclasses.replace(mirror_config, mirror_hard_delete=True)
    # Given a mirrored ticket with an association, and HUBHOOK_MIRROR_HARD_DELETE=1
    hubspot.add("tickets", 60, {"subject": "Broken"})
    hubspot.add("contacts", 61, {"email": "t@example.com"})
    hubspot.associate("tickets", 60, "contacts", 61)
    process(config, redis, [make_event("ticket.creation", 60)])
    assert links(config, "tickets", 60)
    # When it is deleted
    hubspot.archive("tickets", 60)
    process(config, redis, [make_event("ticket.deletion", 60)])
    # Then its row and its associations are gone
    assert row(config, "tickets", 60) is None and not links(config, "tickets", 60)


def test_privacy_deletion_removes_the_row_and_every_association_always(mirror_config, redis, hubspot):
    # Given a mirrored contact associated with a mirrored company, both ways
    hubspot.add("contacts", 21, {"email": "forget@example.com"})
    hubspot.add("companies", 3021, {"name": "Keep"})
    hubspot.associate("contacts", 21, "companies", 3021)
    process(mirror_config, redis, [make_event("contact.creation", 21), make_event("company.creation", 3021)])
    assert links(mirror_config, "companies", 3021) == {("contacts", 21, 280, None)}
    # When HubSpot deletes the contact for GDPR (privacyDeletion, then deletion)
    hubspot.gdpr_delete("contacts", 21)
    process(mirror_config, redis, [make_event("contact.privacyDeletion", 21), make_event("contact.deletion", 21)])
    # Then no trace of it is left: not its row, not an association from or to it
    assert row(mirror_config, "contacts", 21) is None
    assert not links(mirror_config, "contacts", 21) and not links(mirror_config, "companies", 3021)
    assert row(mirror_config, "companies", 3021) is not None


def test_merge_points_the_losers_at_the_winner_and_fetches_it(mirror_config, redis, hubspot):
    # Given two mirrored contacts
    hubspot.add("contacts", 31, {"email": "a@example.com", "firstname": "A"})
    hubspot.add("contacts", 32, {"email": "b@example.com", "lastname": "B"})
    hubspot.add("companies", 3031, {"name": "Co"})
    hubspot.associate("contacts", 32, "companies", 3031)
    process(mirror_config, redis, [make_event("contact.creation", 31), make_event("contact.creation", 32)])
    # When HubSpot merges them into a new record
    winner = hubspot.merge("contacts", 31, 32)
    process(mirror_config, redis, [make_event("contact.merge", 31, primaryObjectId=31, mergedObjectIds=[32],
                                              newObjectId=int(winner), numberOfPropertiesMoved=1)])
    # Then the winner is a row with the merged properties and the moved association
    won = row(mirror_config, "contacts", winner)
    assert won["properties"]["firstname"] == "A" and won["properties"]["lastname"] == "B" and not won["archived"]
    assert links(mirror_config, "contacts", winner) == {("companies", 3031, 279, None)}
    # And both losers point at it, archived, without associations of their own
    for loser in (31, 32):
        lost = row(mirror_config, "contacts", loser)
        assert lost["merged_into"] == int(winner) and lost["archived"]
        assert not links(mirror_config, "contacts", loser)


def test_association_changes_are_followed(mirror_config, redis, hubspot):
    # Given a mirrored deal associated with one contact, with a labeled association too
    hubspot.add("deals", 50, {"dealname": "D"})
    hubspot.add("contacts", 51, {"email": "one@example.com"})
    hubspot.add("contacts", 52, {"email": "two@example.com"})
    hubspot.associate("deals", 50, "contacts", 51, type_id=77, label="Decision maker")
    process(mirror_config, redis, [make_event("deal.creation", 50)])
    assert links(mirror_config, "deals", 50) == {("contacts", 51, 3, None), ("contacts", 51, 77, "Decision maker")}
    # When the association moves from contact 51 to contact 52
    hubspot.unassociate("deals", 50, "contacts", 51)
    hubspot.associate("deals", 50, "contacts", 52)
    process(mirror_config, redis, [
        make_event("deal.associationChange", 50, associationType="DEAL_TO_CONTACT", fromObjectId=50, toObjectId=51,
                   associationRemoved=True),
        make_event("deal.associationChange", 50, associationType="DEAL_TO_CONTACT", fromObjectId=50, toObjectId=52,
                   associationRemoved=False)])
    # Then the associations table follows
    assert links(mirror_config, "deals", 50) == {("contacts", 52, 3, None)}


def test_a_property_added_in_hubspot_mid_stream_is_kept_and_typed(mirror_config, redis, hubspot):
    # Given a mirrored deal
    hubspot.add("deals", 70, {"dealname": "Typed", "amount": 100})
    process(mirror_config, redis, [make_event("deal.creation", 70)])
    typed = query(mirror_config, "SELECT * FROM {s}.deals_typed WHERE object_id = 70")[0]
    assert typed["amount"] == 100 and "renewal_score" not in typed
    # When a new number property is created in HubSpot and set on the deal
    hubspot.define_property("deals", "renewal_score", "number")
    hubspot.update("deals", 70, {"renewal_score": "4.5"})
    process(mirror_config, redis, [make_event("deal.propertyChange", 70, property="renewal_score", value="4.5")])
    # Then the row holds it and the typed view has a numeric column for it
    assert row(mirror_config, "deals", 70)["properties"]["renewal_score"] == "4.5"
    typed = query(mirror_config, "SELECT * FROM {s}.deals_typed WHERE object_id = 70")[0]
    assert float(typed["renewal_score"]) == 4.5
    # And later fetches ask HubSpot for it (a change of another property still carries it)
    hubspot.update("deals", 70, {"renewal_score": "5", "dealname": "Typed 2"})
    process(mirror_config, redis, [make_event("deal.propertyChange", 70, property="dealname", value="Typed 2")])
    assert row(mirror_config, "deals", 70)["properties"]["renewal_score"] == "5"


def test_portals_are_isolated(mirror_config, redis, hubspot):
    # Given the same object id changed in two portals
    hubspot.add("contacts", 90, {"email": "shared@example.com"})
    process(mirror_config, redis, [make_event("contact.creation", 90, portal_id=111),
                                   make_event("contact.creation", 90, portal_id=222)])
    assert row(mirror_config, "contacts", 90, 111) and row(mirror_config, "contacts", 90, 222)
    # When one portal deletes it for GDPR
    process(mirror_config, redis, [make_event("contact.privacyDeletion", 90, portal_id=111)])
    # Then only that portal's row is gone
    assert row(mirror_config, "contacts", 90, 111) is None
    assert row(mirror_config, "contacts", 90, 222) is not None


def test_migrations_run_twice_and_concurrently_apply_once(mirror_config, postgres_server):
    import threading

    from jobs.mirror import schema
    from jobs.mirror.database import connect
    from jobs.mirror.layout import mirrored_types

    # Given eight processes starting at once against an empty database
    applied, errors = [], []

    def start():
        try:
            with connect(mirror_config.mirror_url, autocommit=True) as conn:
                applied.append(schema.migrate(conn, mirror_config.mirror_schema, mirrored_types(mirror_config)))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # When one more starts later
    start()
    # Then every migration ran exactly once, nobody failed, and every table exists
    assert errors == [] and sorted(applied) == [0] * 8 + [1]
    assert query(mirror_config, "SELECT version FROM {s}.schema_version") == [{"version": 1}]
    tables = {r["table_name"] for r in query(mirror_config, "SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = %s", (mirror_config.mirror_schema,))}
    assert {"contacts", "companies", "deals", "tickets", "associations", "properties"} <= tables


def test_the_poller_walks_the_mirrored_types_without_webhooks(mirror_config):
    from jobs.poller import polled_types
    from jobs.worker.context import Context

    # Given the mirror on and no handlers of the user's own (HUBHOOK_HANDLERS unset)
    context = Context(mirror_config)
    # When the poller plans what to walk
    plan = polled_types.plan(context.router, mirror_config)
    # Then tickets (no webhooks by default) are polled for the mirror, and the handlers are the mirror's
    assert [stream.name for stream in plan.polled] == ["ticket"]
    assert sorted(context.router.names()) == ["hubhook.mirror.companies", "hubhook.mirror.contacts",
                                              "hubhook.mirror.deals", "hubhook.mirror.tickets"]


def test_mirror_settings_are_checked_with_the_fix_in_the_message():
    import pytest

    from jobs.mirror.layout import association_pairs, mirrored_types
    from webhook_service.config import Config
    from webhook_service.errors import ConfigError

    # Given settings a user might get wrong, Then each fails with one line saying what to write instead
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL"):
        Config.from_env({"HUBHOOK_MIRROR_URL": "mysql://db/app"})
    with pytest.raises(ConfigError, match="plain lower-case SQL name"):
        Config.from_env({"HUBHOOK_MIRROR_SCHEMA": "Hub Spot"})
    with pytest.raises(ConfigError, match="no HubSpot object type hubhook can read"):
        mirrored_types(Config.from_env({"HUBHOOK_MIRROR_OBJECTS": "contacts,widgets"}))
    with pytest.raises(ConfigError, match="not in HUBHOOK_MIRROR_OBJECTS"):
        association_pairs(Config.from_env({"HUBHOOK_MIRROR_ASSOCIATIONS": "line_items:deals"}))
    # And good ones are read as the tables and pairs they name
    config = Config.from_env({"HUBHOOK_MIRROR_OBJECTS": "contacts,2-123,p_widgets",
                              "HUBHOOK_MIRROR_ASSOCIATIONS": "contacts:2-123"})
    assert [t.table for t in mirrored_types(config)] == ["contacts", "object_2_123", "p_widgets"]
    assert association_pairs(config) == {"contacts": ("2-123",), "2-123": (), "p_widgets": ()}
    # And the URL's password is among the secrets logs redact, never in the config's repr
    secret = Config.from_env({"HUBHOOK_MIRROR_URL": "postgresql://app:pa55word-xyz@db/app"})
    assert "pa55word-xyz" in secret.secrets() and "pa55word-xyz" not in repr(secret)


def test_a_late_deletion_does_not_archive_a_row_fetched_after_it(mirror_config):
    from jobs.mirror import writer
    from jobs.mirror.database import Database
    from jobs.mirror.handler import install
    from jobs.mirror.layout import lookup

    install(Router(), mirror_config)
    db = Database(mirror_config.mirror_url)
    deals = lookup(mirror_config, "deals")
    try:
        # Given a deal deleted at 10:00 and restored, whose row was written from a read at 10:05
        restored = writer.Writes(deals)
        restored.upsert(62515, {"id": "5", "properties": {"dealname": "back"}, "updatedAt": "2026-05-01T10:04:00Z"},
                        "2026-05-01T10:05:00+00:00")
        writer.send(db, mirror_config.mirror_schema, restored)
        # When the deletion's job runs late, after that write
        late = writer.Writes(deals)
        late.archive(62515, 5, "2026-05-01T10:00:00+00:00")
        writer.send(db, mirror_config.mirror_schema, late)
        # Then the row stays live; and a job that read the deal before a newer deletion cannot revive it
        assert row(mirror_config, "deals", 5)["archived"] is False
        deleted = writer.Writes(deals)
        deleted.archive(62515, 5, "2026-05-01T11:00:00+00:00")
        writer.send(db, mirror_config.mirror_schema, deleted)
        stale = writer.Writes(deals)
        stale.upsert(62515, {"id": "5", "properties": {"dealname": "stale"}, "updatedAt": "2026-05-01T10:59:00Z"},
                     "2026-05-01T10:59:30+00:00")
        writer.send(db, mirror_config.mirror_schema, stale)
        found = row(mirror_config, "deals", 5)
        assert found["archived"] is True and found["properties"]["dealname"] == "back"
    finally:
        db.close()
