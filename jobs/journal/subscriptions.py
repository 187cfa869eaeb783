"""The journal subscriptions the registered handlers need, created once (``hubhook journal subscribe``).

Journal subscriptions exist only in the API, per account (``portalId``), never in an app's
``webhooks-hsmeta.json`` (https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/guide).
One OBJECT subscription per object type holds the journal actions of every handler of that type and, when
every ``propertyChange`` handler of it names a ``property=``, just those properties (else all: an empty
list); association handlers add an ASSOCIATION subscription of their type. Creating is idempotent: a
wanted subscription that an existing one of the same portal, type and kind already covers is left alone.
"""
from __future__ import annotations

from jobs.journal import format
from jobs.journal.client import JournalClient
from webhook_service import objects
from webhook_service.config import Config
from webhook_service.router import Router

_ALL_ACTIONS = tuple(format.JOURNAL_ACTIONS)


def wanted(router: Router, config: Config, portal: int) -> list[dict]:
    """The subscription requests the handlers need in ``portal``, in a stable order."""
    actions: dict[str, set[str]] = {}
    properties: dict[str, set[str] | None] = {}
    associations: set[str] = set()
    for handler in router.handlers:
        if handler.pattern == "*":
            pairs = [(name, action) for name in config.webhook_types for action in _ALL_ACTIONS]
        else:
            name, action = handler.pattern.split(".", 1)
            pairs = [(name, a) for a in (_ALL_ACTIONS if action == "*" else (action,))]
        for name, action in pairs:
            try:
                type_id = objects.lookup(name).type_id
            except KeyError:
                continue
            if not objects.TYPE_ID.fullmatch(type_id):   # conversations: not in the journal
                continue
            if action == "associationChange":
                associations.add(type_id)
            journal_actions = format.JOURNAL_ACTIONS.get(action)
            if not journal_actions:
                continue
            actions.setdefault(type_id, set()).update(journal_actions)
            if action == "propertyChange":
                named = handler.property_name
                if named is None:
                    properties[type_id] = None
                elif properties.get(type_id, set()) is not None:
                    properties.setdefault(type_id, set()).add(named)   # type: ignore[union-attr]
    requests = []
    for type_id in sorted(actions):
        object_actions = sorted(a for a in actions[type_id] if not a.startswith("ASSOCIATION"))
        if object_actions:
            props = properties.get(type_id)
            requests.append({"subscriptionType": "OBJECT", "portalId": portal, "objectTypeId": type_id,
                             "actions": object_actions, "properties": sorted(props or ()), "objectIds": []})
    for type_id in sorted(associations):
        requests.append({"subscriptionType": "ASSOCIATION", "portalId": portal, "objectTypeId": type_id,
                         "actions": ["ASSOCIATION_ADDED", "ASSOCIATION_REMOVED"]})
    return requests


def covered(request: dict, existing: list[dict]) -> bool:
    """Whether an existing subscription already asks for everything ``request`` does."""
    for sub in existing:
        if (sub.get("subscriptionType"), str(sub.get("portalId")), sub.get("objectTypeId")) != \
                (request["subscriptionType"], str(request["portalId"]), request["objectTypeId"]):
            continue
        if not set(request.get("actions", ())) <= set(sub.get("actions") or ()):
            continue
        have, want = set(sub.get("properties") or ()), set(request.get("properties") or ())
        if not have or (want and want <= have):
            return True
    return False


def subscribe(client: JournalClient, router: Router, config: Config, portal: int) -> tuple[list[dict], list[dict]]:
    """Create what is missing; (created, already there)."""
    existing = client.subscriptions()
    created, kept = [], []
    for request in wanted(router, config, portal):
        if covered(request, existing):
            kept.append(request)
        else:
            made = client.subscribe(request)
            existing.append(made or request)
            created.append(made or request)
    return created, kept
