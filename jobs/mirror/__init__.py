"""The built-in Postgres mirror: HubSpot's records and associations kept in your own database.

Switched on by ``HUBHOOK_MIRROR_URL``; it is a handler like any other (one per mirrored type,
registered next to the user's), so its failures are retried and parked alone.

- ``layout``: which types, tables, properties and association pairs the settings name.
- ``schema``: migrations (a schema version table, under an advisory lock) and the typed views.
- ``database``: the process's one connection, reopened after PostgreSQL comes back.
- ``writer``: one job's writes to one table in one round trip, with the version guard in SQL.
- ``handler``: the handlers hubhook registers, turning events into writes; property refreshes.
- ``backfill``, ``check``, ``status``: ``hubhook mirror backfill|check|status``.
"""
