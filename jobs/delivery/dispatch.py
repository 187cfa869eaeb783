"""Which handlers run for an object, and the Event each one gets.

``drop_echoes`` runs before grouping (a suppressed change costs no fetch); ``handlers_for`` matches
handlers to an object's changes; ``selected`` runs after the fetch, when the record and the property
history behind ``from_=`` are known; ``build_event`` makes the Event a handler is called with.
Filters leave a trace in the object's history, so ``hubhook inspect`` explains why a handler did not
run: echo suppression, and which handler's ``property=``/``to=``/``from_=`` skipped which change (also
for an object no handler took: ``note_unmatched``). The testing kit (``webhook_service.testing``)
calls these same functions, so a test sees what a worker would.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jobs.delivery import fetching
from jobs.delivery.fetching import Enrichment, ObjectChanges
from jobs.hubspot.client import HubSpotClient
from jobs.hubspot.portal_client import PortalClient
from jobs.worker import recording
from webhook_service import filters
from webhook_service.config import Config
from webhook_service.events import Event
from webhook_service.filters import IgnoreSources
from webhook_service.router import Handler, shown


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
             trace: bool = True, everyone: Sequence[Handler] = ()) -> list[Handler]:
    """The handlers to call for ``item``: those whose ``from_=`` accepts some matching change
    (``trace``: note in the object's history what it brought, who is called and which handler's
    filter skipped it, among ``everyone`` registered; the testing kit, which has no Redis, does not)."""
    chosen: list[Handler] = []
    skipped: list[dict[str, Any]] = []
    for handler in handlers:
        changes = [c for c in item.changes if handler.matches(c)]
        if handler.from_values is None or any(handler.accepts_transition(c, enrichment.record) for c in changes):
            chosen.append(handler)
        else:
            before = filters.old_value(enrichment.record, changes[-1])
            skipped.append(_skip(handler.name, f"from_={shown(handler.from_values)} (was {before!r})", changes[-1]))
    if trace:
        called = {h.name for h in handlers}
        recording.object_seen(item, source, [h.name for h in chosen],
                              skipped + filtered_out([h for h in everyone if h.name not in called], item))
    return chosen


def note_unmatched(handlers: Sequence[Handler], item: ObjectChanges, source: str) -> None:
    """Note in the history of an object no handler takes which handlers' ``property=``/``to=`` filters
    skipped its changes, so ``hubhook inspect`` explains the silence (nothing when no filter did)."""
    skipped = filtered_out(handlers, item)
    if skipped:
        recording.object_seen(item, source, [], skipped)


def filtered_out(handlers: Sequence[Handler], item: ObjectChanges) -> list[dict[str, Any]]:
    """For each handler of the type and action of some change of ``item`` that took none of them: the
    filter that skipped the latest such change (the latest of its own property first: "to='4'" says
    more than "property='hs_pipeline_stage'"), and that change."""
    out = []
    for handler in handlers:
        near = [c for c in item.changes if handler.of_kind(c)]
        if not near or any(handler.matches(c) for c in near):
            continue
        own = [c for c in near if handler.property_name and c.get("propertyName") == handler.property_name]
        change = (own or near)[-1]
        reason = handler.filtered_by(change)
        if reason is not None:
            out.append(_skip(handler.name, reason, change))
    return out


def _skip(handler: str, reason: str, change: dict) -> dict[str, Any]:
    name = change.get("propertyName")
    what = f"{name} -> {change.get('propertyValue')!r}" if name else str(change.get("subscriptionType"))
    return {"handler": handler, "filter": reason, "change": what, "occurredAt": change.get("occurredAt")}


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
