"""Which handlers run for an object, and the Event each one gets.

``drop_echoes`` runs before grouping (a suppressed change costs no fetch); ``handlers_for`` matches
handlers to an object's changes; ``selected`` runs after the fetch, when the record and the property
history behind ``from_=`` are known; ``build_event`` makes the Event a handler is called with. The
two filters leave a trace in the object's history, so ``hubhook inspect`` explains why a handler did
not run. The testing kit (``webhook_service.testing``) calls these same functions, so a test sees
what a worker would.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobs.delivery import fetching
from jobs.delivery.fetching import Enrichment, ObjectChanges
from jobs.hubspot.client import HubSpotClient
from jobs.hubspot.portal_client import PortalClient
from jobs.worker import recording
from webhook_service.config import Config
from webhook_service.events import Event
from webhook_service.filters import IgnoreSources
from webhook_service.router import Handler


def drop_echoes(config: Config, events: list[dict]) -> list[dict]:
    """``events`` without the changes HUBHOOK_IGNORE_SOURCES names (e.g. hubhook's own write-backs)."""
    return split_echoes(config, events)[0]


def split_echoes(config: Config, events: list[dict], *,
                 trace: bool = True) -> tuple[list[dict], list[dict]]:
    """(kept, suppressed): ``events`` split by HUBHOOK_IGNORE_SOURCES (``trace``: note the suppressed
    ones in their objects' history; the testing kit, which has no Redis, does not)."""
    kept, dropped = IgnoreSources(config.ignore_sources).split(events)
    if dropped and trace:
        recording.suppressed(fetching.group_changes(dropped), "echo")
    return kept, dropped


def handlers_for(handlers: list[Handler], item: ObjectChanges) -> list[Handler]:
    """The handlers some change of ``item`` matches (type, action, property, ``to=``), in router order."""
    return [h for h in handlers if any(h.matches(c) for c in item.changes)]


def selected(handlers: list[Handler], item: ObjectChanges, enrichment: Enrichment, source: str, *,
             trace: bool = True) -> list[Handler]:
    """The handlers to call for ``item``: those whose ``from_=`` accepts some matching change
    (``trace``: note it in the object's history; the testing kit, which has no Redis, does not)."""
    chosen, filtered = [], []
    for handler in handlers:
        changes = [c for c in item.changes if handler.matches(c)]
        if handler.from_values is None or any(handler.accepts_transition(c, enrichment.record) for c in changes):
            chosen.append(handler)
        else:
            filtered.append(handler.name)
    if trace:
        recording.object_seen(item, source, [h.name for h in chosen], filtered)
    return chosen


def build_event(handler: Handler, item: ObjectChanges, enrichment: Enrichment, source: str,
                client: HubSpotClient, lock_factory: Callable[..., Any]) -> Event:
    """The Event ``handler`` is called with: ``item``'s changes and fetched data, its subscription type
    from the latest change the handler matches, ``event.hubspot`` bound to the object's portal."""
    latest = [c for c in item.changes if handler.matches(c)][-1]
    return Event.build(
        object_type=item.object_type, object_id=item.object_id, portal_id=item.portal_id,
        subscription_type=f"{item.object_type}.{latest['subscriptionType'].split('.', 1)[1]}",
        source=source, changes=item.changes, record=enrichment.record, associations=enrichment.associations,
        association_types=enrichment.association_types,
        merged_object_ids=item.merged_ids, handler=handler.name,
        hubspot=PortalClient(client, item.portal_id), lock_factory=lock_factory,
    )
