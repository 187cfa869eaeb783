"""``hubhook mirror check``: compare the mirror's live rows with HubSpot, through batch reads.

Every live (not archived) row of a type, or a random ``sample`` of them, is read back from HubSpot
100 ids a call at the poll share of the rate budget, and compared: a record HubSpot no longer
returns, one that now resolves to another id (merged), a different version, or a property whose
value differs. Each drifted row is one line; the caller exits non-zero when there is any.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from psycopg import sql

from jobs.mirror import schema
from jobs.mirror.database import connect
from jobs.mirror.layout import MirroredType, lookup, mirrored_types
from jobs.mirror.writer import _moment
from jobs.worker.context import Context
from webhook_service.config import Config

BATCH = 100


@dataclass
class Drift:
    """One row that differs from HubSpot."""

    table: str
    portal_id: int
    object_id: int
    why: str

    def __str__(self) -> str:
        return f"{self.table} {self.portal_id}/{self.object_id}: {self.why}"


def check(config: Config, type_name: str | None = None, sample: int | None = None) -> Iterator[Drift | int]:
    """Yield each Drift as it is found, then the number of rows checked."""
    assert config.mirror_url
    types = [lookup(config, type_name)] if type_name else mirrored_types(config)
    client = Context(config).client("poll")
    checked = 0
    with connect(config.mirror_url, autocommit=True) as conn:
        # the tables may not exist yet (no worker has run): hubhook creates them, never the user
        schema.migrate(conn, config.mirror_schema, types)
        for mirrored in types:
            names = list(config.mirror_properties) or sorted(schema.known_properties(conn, config.mirror_schema,
                                                                                       mirrored))
            rows = _rows(conn, config.mirror_schema, mirrored, sample)
            by_portal: dict[int, list[tuple]] = defaultdict(list)
            for found in rows:
                by_portal[found[0]].append(found)
            for portal, portal_rows in sorted(by_portal.items()):
                for start in range(0, len(portal_rows), BATCH):
                    chunk = portal_rows[start:start + BATCH]
                    records = client.batch_read(mirrored.api_name, [str(r[1]) for r in chunk], names,
                                                portal_id=portal)
                    for _, object_id, properties, version in chunk:
                        checked += 1
                        why = _difference(records.get(str(object_id)), object_id, properties, version, names)
                        if why:
                            yield Drift(mirrored.table, portal, object_id, why)
    yield checked


def _rows(conn, schema_name: str, mirrored: MirroredType, sample: int | None) -> list[tuple]:
    query = sql.SQL("SELECT portal_id, object_id, properties, version FROM {}.{} WHERE NOT archived").format(
        sql.Identifier(schema_name), sql.Identifier(mirrored.table))
    if sample:
        query = sql.SQL("{} ORDER BY random() LIMIT {}").format(query, sql.Literal(int(sample)))
    else:
        query = sql.SQL("{} ORDER BY portal_id, object_id").format(query)
    return conn.execute(query).fetchall()


def _difference(record: dict | None, object_id: int, stored: dict, version, names: list[str]) -> str | None:
    if record is None:
        return "HubSpot has no live record with this id (deleted?), the mirror holds it live"
    if str(record.get("id")) != str(object_id):
        return f"HubSpot merged it into {record.get('id')}, the mirror holds it live"
    fresh = {k: v for k, v in (record.get("properties") or {}).items() if v is not None and v != ""}
    wanted = set(names) | set(stored) if names else set(stored) | set(fresh)
    differing = sorted(n for n in wanted if fresh.get(n) != stored.get(n))
    if differing:
        shown = "; ".join(f"{n}: mirror {_short(stored.get(n))} != HubSpot {_short(fresh.get(n))}"
                          for n in differing[:5])
        more = f" (+{len(differing) - 5} more)" if len(differing) > 5 else ""
        return shown + more
    updated = record.get("updatedAt")
    if updated and version is not None and _moment(updated) != version:
        return f"version: mirror {version.isoformat()} != HubSpot {updated}"
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "...'"
