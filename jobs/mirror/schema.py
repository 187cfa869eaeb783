"""The mirror's tables, created and migrated by hubhook itself, and the typed views over them.

``migrate`` runs in one transaction under a PostgreSQL advisory lock, so any number of workers
starting at once apply each migration exactly once; it is idempotent, so every process calls it at
start. ``schema_version`` records what was applied. Record tables are created for every mirrored
type (a type added to HUBHOOK_MIRROR_OBJECTS later gets its table at the next start).

Each record table holds one row per (portal_id, object_id). ``version`` is HubSpot's ``updatedAt``
of the record the row holds: a write carrying an older version is refused in SQL (``writer``).
``properties`` is the record's properties as HubSpot returned them (strings), empty ones left out.

``refresh_view`` (re)creates ``<table>_typed``: one column per known property, cast by HubSpot's
property type (number -> numeric, datetime -> timestamptz, date -> date, bool -> boolean, else
text); a value that does not cast reads as NULL rather than failing the query.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from jobs.mirror.layout import FIXED_COLUMNS, MirroredType

#: Applied in order, each once; never edit a released entry, append a new one.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TABLE {schema}.associations (
    portal_id   bigint NOT NULL,
    from_type   text   NOT NULL,
    from_id     bigint NOT NULL,
    to_type     text   NOT NULL,
    to_id       bigint NOT NULL,
    type_id     integer NOT NULL,
    category    text,
    label       text,
    synced_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portal_id, from_type, from_id, to_type, to_id, type_id)
);
CREATE INDEX associations_to ON {schema}.associations (portal_id, to_type, to_id);
CREATE TABLE {schema}.properties (
    object_type text NOT NULL,
    name        text NOT NULL,
    type        text NOT NULL,
    label       text,
    PRIMARY KEY (object_type, name)
);
CREATE FUNCTION {schema}.to_numeric(value text) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN value::numeric; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION {schema}.to_timestamptz(value text) RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value ~ '^[0-9]{{10,15}}$' THEN RETURN to_timestamp(value::bigint / 1000.0); END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION {schema}.to_date(value text) RETURNS date LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value ~ '^[0-9]{{10,15}}$' THEN RETURN (to_timestamp(value::bigint / 1000.0) AT TIME ZONE 'UTC')::date; END IF;
    RETURN value::date;
EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE FUNCTION {schema}.to_boolean(value text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN value::boolean; EXCEPTION WHEN others THEN RETURN NULL; END $$;
"""),
)
RECORD_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.{table} (
    portal_id   bigint NOT NULL,
    object_id   bigint NOT NULL,
    properties  jsonb  NOT NULL DEFAULT '{{}}',
    created_at  timestamptz,
    updated_at  timestamptz,
    archived    boolean NOT NULL DEFAULT false,
    archived_at timestamptz,
    merged_into bigint,
    version     timestamptz,
    synced_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portal_id, object_id)
);
CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (portal_id, synced_at);
"""
#: Every hubhook process takes this lock (any constant; it names the mirror's migrations) while migrating.
LOCK_ID = 7_244_110_913
CASTS = {"number": "to_numeric", "datetime": "to_timestamptz", "date": "to_date", "bool": "to_boolean"}


def migrate(conn: psycopg.Connection, schema: str, types: list[MirroredType]) -> int:
    """Bring ``schema`` to the latest version and create the record tables of ``types``; returns the
    number of migrations applied now (0 when another process already did)."""
    applied = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        ident = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.schema_version (version integer PRIMARY KEY, "
                             "applied_at timestamptz NOT NULL DEFAULT now())").format(ident))
        row = conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(ident)).fetchone()
        current = row[0] if row else 0
        for version, text in MIGRATIONS:
            if version > current:
                conn.execute(sql.SQL(text).format(schema=ident))  # type: ignore[arg-type]
                conn.execute(sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(ident), (version,))
                applied += 1
        for mirrored in types:
            conn.execute(sql.SQL(RECORD_TABLE).format(  # type: ignore[arg-type]
                schema=ident, table=sql.Identifier(mirrored.table), index=sql.Identifier(f"{mirrored.table}_synced")))
    return applied


def store_properties(conn: psycopg.Connection, schema: str, mirrored: MirroredType, found: list[dict]) -> bool:
    """Record the properties HubSpot listed for a type; True when one was new (or changed type)."""
    rows = [(mirrored.api_name, p["name"], str(p.get("type") or "string"), p.get("label")) for p in found
            if isinstance(p, dict) and p.get("name")]
    if not rows:
        return False
    with conn.transaction():
        cur = conn.execute(sql.SQL(
            "INSERT INTO {}.properties AS p (object_type, name, type, label) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (object_type, name) DO UPDATE SET type = EXCLUDED.type, label = EXCLUDED.label "
            "WHERE p.type IS DISTINCT FROM EXCLUDED.type RETURNING name").format(sql.Identifier(schema)),
            [list(column) for column in zip(*rows)])
        return bool(cur.fetchall())


def known_properties(conn: psycopg.Connection, schema: str, mirrored: MirroredType) -> dict[str, str]:
    """Property name -> HubSpot type, as last read from the properties API."""
    rows = conn.execute(sql.SQL("SELECT name, type FROM {}.properties WHERE object_type = %s ORDER BY name")
                        .format(sql.Identifier(schema)), (mirrored.api_name,)).fetchall()
    return dict(rows)


def refresh_view(conn: psycopg.Connection, schema: str, mirrored: MirroredType,
                 properties: dict[str, str]) -> None:
    """Recreate ``<table>_typed`` with one typed column per property (in one transaction: readers see the
    old view or the new one)."""
    ident = sql.Identifier(schema)
    columns: list[sql.Composable] = [sql.SQL("portal_id, object_id, created_at, updated_at, archived, archived_at, "
                                             "merged_into")]
    taken = set(FIXED_COLUMNS)
    for name, kind in sorted(properties.items()):
        column = name[:63] if name not in taken else f"p_{name}"[:63]
        if column in taken:
            continue
        taken.add(column)
        value = sql.SQL("properties ->> {}").format(sql.Literal(name))
        cast = CASTS.get(kind)
        expression = sql.SQL("{}.{}({})").format(ident, sql.Identifier(cast), value) if cast else value
        columns.append(sql.SQL("{} AS {}").format(expression, sql.Identifier(column)))
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))  # two workers refreshing at once
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {}.{}").format(ident, sql.Identifier(mirrored.view)))
        conn.execute(sql.SQL("CREATE VIEW {}.{} AS SELECT {} FROM {}.{}").format(
            ident, sql.Identifier(mirrored.view), sql.SQL(", ").join(columns), ident, sql.Identifier(mirrored.table)))
