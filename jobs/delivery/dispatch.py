"""The two dispatch decisions that need more than the event: echo suppression and ``from_=``.

``drop_echoes`` runs before grouping (a suppressed change costs no fetch); ``selected`` runs after
the fetch, when the record and the property history behind ``from_=`` are known. Both leave a trace
in the object's history, so ``hubhook inspect`` explains why a handler did not run. The testing kit
(``webhook_service.testing``) calls the same two functions.
"""
from __future__ import annotations

from webhook_service.config import Config
from webhook_service.filters import IgnoreSources
from webhook_service.router import Handler

from jobs.delivery import fetching
from jobs.worker import recording
from jobs.delivery.fetching import Enrichment, ObjectChanges


def drop_echoes(config: Config, events: list[dict]) -> list[dict]:
    """``events`` without the changes HUBHOOK_IGNORE_SOURCES names (e.g. hubhook's own write-backs)."""
    ignore = IgnoreSources(config.ignore_sources)
    kept, dropped = ignore.split(events)
    if dropped:
        recording.suppressed(fetching.group_changes(dropped), "echo")
    return kept


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
