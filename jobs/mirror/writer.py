"""One job's writes to one record table, sent in one round trip, with the version guard in SQL.

A job gathers what its events mean for one table (``Writes``): records to upsert, rows to archive,
merged-away ids, privacy deletions, and association sets to replace. ``send`` runs them in a single
transaction through psycopg's pipeline mode, each kind as one statement over arrays (``unnest``), so a
job costs one round trip per table whatever its size.

The guard (``UPSERT``): a row is replaced only when the incoming record's version (HubSpot's
``updatedAt``) is not older than the stored one, and not when the row was archived (deleted or merged
away) after the incoming record was fetched (``synced_at``). So two jobs that fetched one object at
different moments may write in either order and the newer HubSpot version wins; a restore is written
because it was fetched after the deletion. A deletion archives only rows fetched before it happened.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from jobs.mirror.database import Database, MirrorUnavailable, describe
from jobs.mirror.layout import MirroredType

UPSERT = """
INSERT INTO {schema}.{table} AS t (portal_id, object_id, properties, created_at, updated_at, archived,
                                   archived_at, merged_into, version, synced_at)
SELECT r.p, r.o, r.props, r.c, r.u, false, NULL, NULL, r.u, r.s
FROM jsonb_to_recordset(%s::jsonb) AS r(p bigint, o bigint, props jsonb, c timestamptz, u timestamptz, s timestamptz)
ON CONFLICT (portal_id, object_id) DO UPDATE SET
    properties = EXCLUDED.properties, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    archived = false, archived_at = NULL, merged_into = NULL, version = EXCLUDED.version,
    synced_at = EXCLUDED.synced_at
WHERE (t.version IS NULL OR t.version <= EXCLUDED.version)
  AND NOT (t.archived AND t.archived_at IS NOT NULL AND t.archived_at >= EXCLUDED.synced_at)
"""
ARCHIVE = """
INSERT INTO {schema}.{table} AS t (portal_id, object_id, archived, archived_at, synced_at)
SELECT r.portal_id, r.object_id, true, r.at::timestamptz, r.at::timestamptz
FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS r(portal_id, object_id, at)
ON CONFLICT (portal_id, object_id) DO UPDATE SET archived = true, archived_at = EXCLUDED.archived_at
WHERE t.synced_at <= EXCLUDED.archived_at AND NOT (t.archived AND t.archived_at <= EXCLUDED.archived_at)
"""
HARD_DELETE = """
DELETE FROM {schema}.{table} t USING unnest(%s::bigint[], %s::bigint[], %s::text[]) AS r(portal_id, object_id, at)
WHERE t.portal_id = r.portal_id AND t.object_id = r.object_id AND t.synced_at <= r.at::timestamptz
"""
MERGED = """
INSERT INTO {schema}.{table} AS t (portal_id, object_id, archived, archived_at, merged_into, synced_at)
SELECT r.portal_id, r.object_id, true, r.at::timestamptz, r.winner, r.at::timestamptz
FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[]) AS r(portal_id, object_id, winner, at)
ON CONFLICT (portal_id, object_id) DO UPDATE SET archived = true, merged_into = EXCLUDED.merged_into,
    archived_at = coalesce(t.archived_at, EXCLUDED.archived_at)
"""
FORGET = """
DELETE FROM {schema}.{table} t USING unnest(%s::bigint[], %s::bigint[]) AS r(portal_id, object_id)
WHERE t.portal_id = r.portal_id AND t.object_id = r.object_id
"""
FORGET_LINKS = """
DELETE FROM {schema}.associations a USING unnest(%s::bigint[], %s::bigint[]) AS r(portal_id, object_id)
WHERE a.portal_id = r.portal_id AND ((a.from_type = %s AND a.from_id = r.object_id)
                                     OR (a.to_type = %s AND a.to_id = r.object_id))
"""
UNLINK = """
DELETE FROM {schema}.associations a
USING unnest(%s::bigint[], %s::bigint[], %s::text[]) AS r(portal_id, from_id, to_type)
WHERE a.portal_id = r.portal_id AND a.from_type = %s AND a.from_id = r.from_id AND a.to_type = r.to_type
"""
UNLINK_ALL = """
DELETE FROM {schema}.associations a USING unnest(%s::bigint[], %s::bigint[]) AS r(portal_id, from_id)
WHERE a.portal_id = r.portal_id AND a.from_type = %s AND a.from_id = r.from_id
"""
LINK = """
INSERT INTO {schema}.associations AS a (portal_id, from_type, from_id, to_type, to_id, type_id, category, label)
SELECT r.portal_id, %s, r.from_id, r.to_type, r.to_id, r.type_id, r.category, r.label
FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::integer[], %s::text[], %s::text[])
     AS r(portal_id, from_id, to_type, to_id, type_id, category, label)
ON CONFLICT (portal_id, from_type, from_id, to_type, to_id, type_id)
DO UPDATE SET category = EXCLUDED.category, label = EXCLUDED.label, synced_at = now()
"""

Key = tuple[int, int]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _moment(text: str | None) -> datetime:
    try:
        return datetime.fromisoformat(text) if text else datetime.min.replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def record_row(portal_id: int, record: dict, synced_at: str) -> tuple[Key, dict[str, Any]]:
    """The upsert row of a record as the CRM API returns it (empty properties left out). Rows travel as one
    JSON document per statement (``jsonb_to_recordset``): one parameter to encode, parsed once by the server."""
    properties = {k: v for k, v in (record.get("properties") or {}).items() if v is not None and v != ""}
    updated = record.get("updatedAt") or properties.get("hs_lastmodifieddate") or properties.get("lastmodifieddate")
    created = record.get("createdAt") or properties.get("createdate") or properties.get("hs_createdate")
    key = (int(portal_id), int(record["id"]))
    return key, {"p": key[0], "o": key[1], "props": properties, "c": created, "u": updated, "s": synced_at}


@dataclass
class Writes:
    """What one job will write for one mirrored type."""

    mirrored: MirroredType
    records: dict[Key, dict[str, Any]] = field(default_factory=dict)
    archives: dict[Key, str] = field(default_factory=dict)
    merges: dict[Key, tuple[int, str]] = field(default_factory=dict)
    forgets: set[Key] = field(default_factory=set)
    #: (portal, from id, to type api name) -> [(to id, type id, category, label)]: the whole set, replaced.
    links: dict[tuple[int, int, str], list[tuple[int, int, str | None, str | None]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.records or self.archives or self.merges or self.forgets or self.links)

    def upsert(self, portal_id: int, record: dict, synced_at: str) -> int:
        """Queue a record; within one job the newest version of an id wins. Returns its id."""
        key, row = record_row(portal_id, record, synced_at)
        held = self.records.get(key)
        if held is None or _moment(held["u"]) <= _moment(row["u"]):
            self.records[key] = row
        return key[1]

    def archive(self, portal_id: int, object_id: int | str, at: str) -> None:
        key = (int(portal_id), int(object_id))
        self.archives[key] = max(self.archives.get(key, at), at, key=_moment)

    def merged(self, portal_id: int, loser: int | str, winner: int | str, at: str) -> None:
        self.merges[(int(portal_id), int(loser))] = (int(winner), at)

    def forget(self, portal_id: int, object_id: int | str) -> None:
        self.forgets.add((int(portal_id), int(object_id)))

    def replace_links(self, portal_id: int, from_id: int | str, to_type: str,
                      links: list[tuple[int, int, str | None, str | None]]) -> None:
        self.links[(int(portal_id), int(from_id), to_type)] = links

    def statements(self, schema: str, *, hard_delete: bool = False) -> list[tuple[sql.Composed, list[Any]]]:
        """The statements of this batch, in the order they must run."""
        names = {"schema": sql.Identifier(schema), "table": sql.Identifier(self.mirrored.table)}
        out: list[tuple[sql.Composed, list[Any]]] = []

        def add(text: str, params: list[Any]) -> None:
            out.append((sql.SQL(text).format(**names), params))  # type: ignore[arg-type]

        if self.records:
            add(UPSERT, [json.dumps(list(self.records.values()))])
        if self.merges:
            merged = [(p, o, w, at) for (p, o), (w, at) in self.merges.items()]
            add(MERGED, [list(column) for column in zip(*merged)])
            add(UNLINK_ALL, [[p for p, _, _, _ in merged], [o for _, o, _, _ in merged], self.mirrored.api_name])
        if self.links:
            sets = list(self.links)
            add(UNLINK, [[k[0] for k in sets], [k[1] for k in sets], [k[2] for k in sets], self.mirrored.api_name])
            linked = [(p, f, t, *link) for (p, f, t), links in self.links.items() for link in links]
            if linked:
                add(LINK, [self.mirrored.api_name, *[list(column) for column in zip(*linked)]])
        kind = self.mirrored.api_name
        if self.archives:
            archived = [(p, o, at) for (p, o), at in self.archives.items()]
            add(HARD_DELETE if hard_delete else ARCHIVE, [list(column) for column in zip(*archived)])
            if hard_delete:
                add(FORGET_LINKS, [[p for p, _, _ in archived], [o for _, o, _ in archived], kind, kind])
        if self.forgets:
            forgotten = sorted(self.forgets)
            add(FORGET, [[p for p, _ in forgotten], [o for _, o in forgotten]])
            add(FORGET_LINKS, [[p for p, _ in forgotten], [o for _, o in forgotten], kind, kind])
        return out


def send(db: Database, schema: str, writes: Writes, *, hard_delete: bool = False) -> None:
    """Run one batch in one transaction and one round trip; MirrorUnavailable when PostgreSQL failed."""
    statements = writes.statements(schema, hard_delete=hard_delete)
    if not statements:
        return
    conn = db.connection()
    try:
        with conn.pipeline(), conn.transaction():
            for statement, params in statements:
                conn.execute(statement, params)
    except psycopg.Error as exc:
        db.reset()
        raise MirrorUnavailable(f"PostgreSQL at {describe(db.url)} refused the mirror's write to "
                                f"{writes.mirrored.table} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
                                ) from None
