"""``hubhook mirror status``: rows per type, the newest change, the lag and the last error."""
from __future__ import annotations

import time
from typing import Any

from psycopg import sql
from redis import Redis

from jobs.mirror.database import connect, describe
from jobs.mirror.layout import mirrored_types
from webhook_service import keys
from webhook_service.config import Config


def status_rows(config: Config, redis: Redis | None = None) -> dict[str, Any]:
    """What the mirror holds: per type its rows (live, archived, merged away), the newest HubSpot version
    it holds, when it last wrote, and the lag of that write (seconds from HubSpot's change to the row);
    plus the last failed write (from Redis)."""
    assert config.mirror_url
    out: dict[str, Any] = {"database": describe(config.mirror_url), "schema": config.mirror_schema, "types": []}
    with connect(config.mirror_url, autocommit=True) as conn:
        ident = sql.Identifier(config.mirror_schema)
        version = conn.execute("SELECT to_regclass(%s)", (f"{config.mirror_schema}.schema_version",)).fetchone()
        if not version or version[0] is None:
            out["migrated"] = False
            return out
        out["migrated"] = True
        for mirrored in mirrored_types(config):
            table = sql.Identifier(mirrored.table)
            exists = conn.execute("SELECT to_regclass(%s)", (f"{config.mirror_schema}.{mirrored.table}",)).fetchone()
            if not exists or exists[0] is None:
                continue
            live, archived, merged, newest, synced = conn.execute(sql.SQL(
                "SELECT count(*) FILTER (WHERE NOT archived), "
                "count(*) FILTER (WHERE archived AND merged_into IS NULL), "
                "count(*) FILTER (WHERE merged_into IS NOT NULL), max(version), max(synced_at) FROM {}.{}"
            ).format(ident, table)).fetchone()  # type: ignore[misc]
            lag = conn.execute(sql.SQL(
                "SELECT extract(epoch FROM synced_at - version) FROM {}.{} WHERE version IS NOT NULL "
                "ORDER BY synced_at DESC LIMIT 1").format(ident, table)).fetchone()
            out["types"].append({"type": mirrored.api_name, "table": f"{config.mirror_schema}.{mirrored.table}",
                                 "live": live, "archived": archived, "merged": merged,
                                 "newest_change": newest.isoformat() if newest else None,
                                 "last_write": synced.isoformat() if synced else None,
                                 "lag_seconds": round(float(lag[0]), 3) if lag and lag[0] is not None else None})
        out["associations"] = conn.execute(sql.SQL("SELECT count(*) FROM {}.associations").format(ident)
                                           ).fetchone()[0]  # type: ignore[index]
    if redis is not None:
        error = {k.decode(): v.decode() for k, v in redis.hgetall(keys.MIRROR_LAST_ERROR).items()}  # type: ignore
        if error:
            error["age_seconds"] = str(round(time.time() - float(error.get("at", time.time()))))
        out["last_error"] = error or None
    return out
