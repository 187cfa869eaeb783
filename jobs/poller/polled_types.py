"""Which object types the poller walks, and how a walked page becomes one delivery job.

A type is polled when some handler registered for it and HubSpot does not send its webhooks here
(``HUBHOOK_WEBHOOK_TYPES``); with ``HUBHOOK_RECONCILE_INTERVAL`` set, webhook types with handlers are
walked too, slowly, as a safety net. Everything else is left alone: polling costs search requests,
HubSpot's scarcest budget (5 per second per account).

Polled changes are shaped like HubSpot's webhook events, so the worker batch-fetches and dispatches
them exactly as it does webhooks: one job per page (at most 200 events), ``source="poll"``.
"""
from __future__ import annotations

from dataclasses import dataclass

from jobs.poller.reconcile import POLL_SOURCE
from jobs.poller.search_walk import created_ms
from webhook_service import objects
from webhook_service.config import Config
from webhook_service.objects import ObjectType
from webhook_service.router import Router

UNSEARCHABLE = objects.UNSEARCHABLE
_ACTIVITIES = frozenset({"calls", "emails", "meetings", "notes", "tasks"})


@dataclass(frozen=True)
class Stream:
    """One (portal, object type) the poller walks, at ``interval`` seconds."""

    otype: ObjectType
    portal: int
    interval: float
    reconcile: bool = False      # a webhook type walked only to catch lost webhooks
    watched: tuple[str, ...] = ()  # properties whose changes become propertyChange events (property_changes)

    @property
    def name(self) -> str:
        """The singular name events carry: "ticket", "line_item", "2-1234", "p_widgets"."""
        return self.otype.name

    @property
    def prop(self) -> str:
        """The modified-date property search sorts and filters on."""
        return self.otype.modified_property

    @property
    def created_prop(self) -> str:
        """The create-date property: ``hs_createdate`` for activities, else ``createdate`` (the
        searchable-objects table of
        https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm)."""
        return "hs_createdate" if self.otype.api_name in _ACTIVITIES else "createdate"


@dataclass(frozen=True)
class Plan:
    """What one poller process will walk, and why it leaves other types alone."""

    polled: tuple[Stream, ...]
    reconciled: tuple[Stream, ...]
    skipped: tuple[str, ...]     # one human sentence per type that will not be walked

    @property
    def streams(self) -> tuple[Stream, ...]:
        return self.polled + self.reconciled


def canonical(name: str) -> str:
    """The singular name for any spelling ``objects.lookup`` accepts (unknown names unchanged)."""
    try:
        return objects.lookup(name).name
    except KeyError:
        return name


def plan(router: Router, config: Config) -> Plan:
    """Split the handlers' object types into polled, reconciled and skipped."""
    webhook = {canonical(n) for n in config.webhook_types}
    wanted = sorted({canonical(n) for n in router.object_types()})
    polled: list[Stream] = []
    reconciled: list[Stream] = []
    skipped: list[str] = []
    for name in wanted:
        if name in UNSEARCHABLE:
            if name not in webhook:
                skipped.append(f"{name}: HubSpot has no search for it, so only its webhooks can deliver it")
            continue
        otype = objects.lookup(name)
        if name not in webhook:
            polled.append(Stream(otype, config.portal_id, config.poll_interval, watched=watched(router, name)))
        elif config.reconcile_interval:
            every = float(config.reconcile_interval)
            reconciled.append(Stream(otype, config.portal_id, every, reconcile=True))
    return Plan(tuple(polled), tuple(reconciled), tuple(skipped))


def watched(router: Router, name: str) -> tuple[str, ...]:
    """The properties ``property=`` handlers of type ``name`` watch (``to=``/``from_=`` imply one), sorted."""
    return tuple(sorted({h.property_name for h in router.handlers if h.property_name is not None
                         and h.object_type is not None and canonical(h.object_type) == name}))


def describe(plan_: Plan, router: Router, config: Config) -> str:
    """One log line saying what will be walked (or that nothing will, and what the handlers want)."""
    if not plan_.streams:
        types = ", ".join(sorted(router.object_types())) or "none (only '*' or object.* handlers)"
        return (f"nothing to poll: handlers ({len(router.handlers)}) want types [{types}], and all of them "
                f"arrive by webhook (HUBHOOK_WEBHOOK_TYPES={','.join(config.webhook_types)}); "
                f"idling as a standby for the leader lock")
    names = ", ".join(s.name for s in plan_.polled) or "no types"
    parts = [f"polling {names} every {config.poll_interval:g}s"]
    parts += [f"reading the history of {s.name} {', '.join(s.watched)} for property= handlers"
              for s in plan_.polled if s.watched]
    if plan_.reconciled:
        parts.append(f"reconciling webhook types {', '.join(s.name for s in plan_.reconciled)} "
                     f"every {config.reconcile_interval:g}s")
    parts += [f"skipping {s}" for s in plan_.skipped]
    return "; ".join(parts)


def poll_event(stream: Stream, result: dict, modified: int, previous_ms: int) -> dict:
    """A webhook-shaped event for one polled version: creation when created after the last cursor."""
    created = created_ms(result, stream.created_prop)
    action = "creation" if created is not None and created > previous_ms else "propertyChange"
    return {"subscriptionType": f"{stream.name}.{action}", "objectId": int(result["id"]),
            "portalId": stream.portal, "occurredAt": modified, "eventId": modified, "subscriptionId": 0,
            "attemptNumber": 0, "changeSource": POLL_SOURCE, "objectTypeId": stream.otype.type_id}


def deletion_event(stream: Stream, object_id: str, archived_ms: int) -> dict:
    """A webhook-shaped deletion event for a record the archived sweep found."""
    return {"subscriptionType": f"{stream.name}.deletion", "objectId": int(object_id),
            "portalId": stream.portal,
            "occurredAt": archived_ms, "eventId": archived_ms, "subscriptionId": 0, "attemptNumber": 0,
            "changeSource": POLL_SOURCE, "objectTypeId": stream.otype.type_id}
