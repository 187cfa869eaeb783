"""The mirror's handlers: one per mirrored type, registered next to the user's own.

Each is a plain hubhook Handler (``<type>.*``) asking for every property the mirror keeps and the
configured association types, so records arrive through the same batched fetch as every handler's.
Its function only notes what the event means for the table (``writer.Writes``); the Handler's
``flush``, called by the job once all its objects were handled, writes them in one round trip. When
that fails (PostgreSQL down), each object is retried alone and then parked like any handler's work,
and ``hubhook replay`` converges the mirror later; the user's handlers are not involved.

What the events mean:
- a fetched record: upserted (version guard in SQL); ids that now resolve to another record
  (merges: the event's ids, ``hs_merged_object_ids``) get ``merged_into`` = the winner, archived;
- deletion (or a record HubSpot no longer has): ``archived = true`` at the deletion's time, or the
  row removed with HUBHOOK_MIRROR_HARD_DELETE;
- privacy deletion: the row and every association to or from it removed, always;
- restore: just a fetched record again, so the row is unarchived;
- every fetch replaces the object's associations of the configured types.

Properties: HUBHOOK_MIRROR_PROPERTIES, else every property the properties API lists, stored in the
``properties`` table; a record or change naming one the mirror does not know makes it read the list
again, add the column to the typed view, and ask for the new property from then on.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from redis import Redis
from redis.exceptions import RedisError

from jobs.hubspot.client import HubSpotClient
from jobs.mirror import schema, writer
from jobs.mirror.database import Database, MirrorUnavailable, describe
from jobs.mirror.layout import MirroredType, association_pairs, mirrored_types
from webhook_service import keys, logs, objects
from webhook_service.config import Config
from webhook_service.errors import HubSpotAPIError
from webhook_service.events import Event
from webhook_service.router import Handler, Router

log = logging.getLogger("hubhook.mirror")
PREFIX = "hubhook.mirror."
_mirrors: dict[tuple[str, str], Mirror] = {}
_guard = threading.Lock()


def ms_iso(ms: Any) -> str:
    """An event's ``occurredAt`` (epoch ms) as ISO-8601 UTC."""
    try:
        return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat()
    except (TypeError, ValueError, OverflowError):
        return writer.now_iso()


class Mirror:
    """One process's mirror: its connection, the properties it keeps, and the writes of the running job."""

    def __init__(self, config: Config, redis: Redis | None, client: Callable[[], HubSpotClient] | None) -> None:
        assert config.mirror_url, "the mirror needs HUBHOOK_MIRROR_URL"
        self.config = config
        self.schema = config.mirror_schema
        self.types = {t.name: t for t in mirrored_types(config)}
        self.pairs = association_pairs(config)
        self.db = Database(config.mirror_url)
        self.redis = redis
        self.client = client
        self.properties: dict[str, dict[str, str]] = {t.api_name: {} for t in self.types.values()}
        self.pending: dict[str, writer.Writes] = {}
        self.stale: set[tuple[int | None, str]] = set()   # (portal, type) whose property list to read again
        self.router: Router | None = None
        self.ready = False

    # -- set-up ------------------------------------------------------------------------------------------
    def install(self, router: Router) -> Router:
        """Register (or re-register) one handler per mirrored type on ``router``; never fails on PostgreSQL
        or HubSpot being unreachable: the first write retries the set-up."""
        self.router = router
        try:
            self.prepare()
        except (MirrorUnavailable, HubSpotAPIError) as exc:
            log.warning("mirror not ready yet (%s); its writes will retry", logs.redact(str(exc)))
        for mirrored in self.types.values():
            self._register(mirrored)
        return router

    def prepare(self) -> None:
        """Migrate, load (or read from HubSpot) the properties of each type, and refresh the views."""
        conn = self.db.connection()
        try:
            schema.migrate(conn, self.schema, list(self.types.values()))
            for mirrored in self.types.values():
                known = schema.known_properties(conn, self.schema, mirrored)
                if not known and not self.config.mirror_properties and self.client is not None:
                    try:
                        listed = self._list_properties(mirrored, None)
                    except HubSpotAPIError as exc:  # e.g. 403: the properties API wants crm.schemas.*.read
                        log.warning("mirror: cannot read the properties of %s from HubSpot (%s); keeping HubSpot's "
                                    "default properties only: grant the app the scope HubSpot named, or set "
                                    "HUBHOOK_MIRROR_PROPERTIES", mirrored.api_name, logs.redact(str(exc))[:200])
                        listed = []
                    schema.store_properties(conn, self.schema, mirrored, listed)
                    known = schema.known_properties(conn, self.schema, mirrored)
                if self.config.mirror_properties:
                    known = {name: known.get(name, "string") for name in self.config.mirror_properties}
                self.properties[mirrored.api_name] = known
                schema.refresh_view(conn, self.schema, mirrored, known)
        except psycopg.Error as exc:
            self.db.reset()
            raise MirrorUnavailable(f"PostgreSQL at {describe(self.db.url)} failed while preparing the mirror "
                                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
                                    ) from None
        except Exception:
            self.db.reset()
            raise
        self.ready = True
        if self.router is not None:
            for mirrored in self.types.values():
                self._register(mirrored)

    def _list_properties(self, mirrored: MirroredType, portal: int | None) -> list[dict]:
        assert self.client is not None
        return self.client().properties(mirrored.api_name, portal_id=portal or self.config.portal_id or None)

    def _register(self, mirrored: MirroredType) -> None:
        assert self.router is not None
        name = PREFIX + mirrored.api_name
        handler = Handler(name=name, fn=self.handle, pattern=f"{mirrored.name}.*",
                          properties=tuple(sorted(self.properties[mirrored.api_name])),
                          associations=self.pairs.get(mirrored.api_name, ()),
                          flush=functools.partial(self.flush, mirrored.api_name))
        handlers = self.router.handlers
        for index, existing in enumerate(handlers):
            if existing.name == name:
                handlers[index] = handler
                return
        handlers.append(handler)

    # -- the handler -------------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Note what one object's changes mean for its table; ``flush`` writes them."""
        mirrored = self.types.get(event.object_type) or self.types.get(_name(event.object_type))
        if mirrored is None:
            return
        writes = self.pending.setdefault(mirrored.api_name, writer.Writes(mirrored))
        portal, actions = event.portal_id, [c["subscriptionType"].split(".", 1)[1] for c in event.changes]
        if "privacyDeletion" in actions:
            writes.forget(portal, event.object_id)
            return
        if event.record is None:
            at = ms_iso(event.changes[-1].get("occurredAt")) if actions[-1] == "deletion" else writer.now_iso()
            writes.archive(portal, event.object_id, at)
            return
        record_id = writes.upsert(portal, dict(event.record), writer.now_iso())
        merge_at = next((ms_iso(c.get("occurredAt")) for c in reversed(event.changes)
                         if c["subscriptionType"].endswith(".merge")), writer.now_iso())
        for loser in _merged_ids(event) - {str(record_id)}:
            writes.merged(portal, loser, record_id, merge_at)
        for to_type in self.pairs.get(mirrored.api_name, ()):
            if to_type not in event.associations:
                continue
            types = event.association_types.get(to_type, {})
            links = [(int(to_id), int(kind.get("typeId") or 0), kind.get("category"), kind.get("label"))
                     for to_id in event.associations[to_type] for kind in (types.get(to_id) or [{}])]
            writes.replace_links(portal, record_id, to_type, links)
        if not self.config.mirror_properties:
            known = self.properties[mirrored.api_name]
            named = set(event.record.get("properties") or {}) | {c["propertyName"] for c in event.changes
                                                                   if c.get("propertyName")}
            if known and named - set(known):
                self.stale.add((portal, mirrored.api_name))

    def flush(self, api_name: str) -> None:
        """Write what this job noted for one type in one round trip; raise (after noting the error for
        ``hubhook mirror status``) when PostgreSQL failed, so its objects are retried."""
        writes = self.pending.pop(api_name, None)
        if not writes:
            return
        try:
            if not self.ready:
                self.prepare()
                if writes.records and not self.config.mirror_properties:
                    raise MirrorUnavailable("the mirror was not ready when these records were fetched; "
                                            "retrying them with every property")
            self._refresh(api_name)
            writer.send(self.db, self.schema, writes, hard_delete=self.config.mirror_hard_delete)
        except Exception as exc:
            self._note_error(PREFIX + api_name, exc)
            raise

    # -- properties --------------------------------------------------------------------------------------
    def _refresh(self, api_name: str) -> None:
        """Read the property list again for the portals that showed an unknown property; a failure here is
        a warning (the record is written with what it has), not a failed write."""
        for portal, name in sorted((p, n) for p, n in self.stale if n == api_name):
            self.stale.discard((portal, name))
            mirrored = next(t for t in self.types.values() if t.api_name == name)
            try:
                conn = self.db.connection()
                if schema.store_properties(conn, self.schema, mirrored, self._list_properties(mirrored, portal)):
                    known = schema.known_properties(conn, self.schema, mirrored)
                    schema.refresh_view(conn, self.schema, mirrored, known)
                    added = sorted(set(known) - set(self.properties[name]))
                    self.properties[name] = known
                    if self.router is not None:
                        self._register(mirrored)
                    log.info("mirror: %s has new properties %s; %s updated", name, ", ".join(added[:10]),
                             mirrored.view)
            except psycopg.Error as exc:
                self.db.reset()
                raise MirrorUnavailable(f"PostgreSQL at {describe(self.db.url)} failed ({type(exc).__name__})"
                                        ) from None
            except (HubSpotAPIError, MirrorUnavailable) as exc:
                log.warning("mirror: could not refresh the properties of %s (%s); retrying on the next change",
                            name, logs.redact(str(exc))[:200])

    def _note_error(self, handler: str, exc: Exception) -> None:
        if self.redis is None:
            return
        try:
            self.redis.hset(keys.MIRROR_LAST_ERROR, mapping={
                "at": f"{time.time():.3f}", "handler": handler,
                "error": logs.redact(f"{type(exc).__name__}: {exc}")[:500]})
        except RedisError:
            pass


def _name(object_type: str) -> str:
    try:
        return objects.lookup(object_type).name
    except KeyError:
        return object_type


def _merged_ids(event: Event) -> set[str]:
    """Ids that now resolve to the fetched record: the event's own, the merge events' and the record's
    ``hs_merged_object_ids``."""
    ids = {str(event.object_id), *map(str, event.merged_object_ids)}
    for change in event.changes:
        if change["subscriptionType"].endswith(".merge"):
            ids.update(str(i) for i in [change.get("primaryObjectId"), *change.get("mergedObjectIds", ())] if i)
    record: dict[str, Any] = dict(event.record or {})
    properties: dict[str, Any] = dict(record.get("properties") or {})
    merged = str(properties.get("hs_merged_object_ids") or "")
    ids.update(i for i in merged.split(";") if i.strip().isdigit())
    return {i for i in ids if i.isdigit()}


def install(router: Router, config: Config, redis: Redis | None = None,
            client: Callable[[], HubSpotClient] | None = None) -> Router:
    """Add the mirror's handlers to ``router`` when HUBHOOK_MIRROR_URL is set (one Mirror per process and
    database, reused when a process builds its router again)."""
    if not config.mirror_url:
        return router
    with _guard:
        key = (config.mirror_url, config.mirror_schema)
        mirror = _mirrors.get(key)
        if mirror is None or mirror.config != config:
            if mirror is not None:
                mirror.db.close()
            mirror = _mirrors[key] = Mirror(config, redis, client)
        else:
            mirror.redis, mirror.client = redis, client
    return mirror.install(router)


def close_all() -> None:
    """Close every mirror connection of this process (tests, and a worker that stops)."""
    with _guard:
        for mirror in _mirrors.values():
            mirror.db.close()
        _mirrors.clear()
