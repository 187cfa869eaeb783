"""``hubhook trigger TYPE``: make a change in the local HubSpot and send the webhook HubSpot would send.

Like ``stripe trigger``: the object is really created or changed through the CRM API
(``HUBSPOT_API_BASE_URL``: the fake HubSpot, or a developer test account), so the handler that runs
on the delivery reads a record that exists, and then one signed delivery (v3 and v1 signatures, as
HubSpot signs: https://developers.hubspot.com/docs/api/webhooks/validating-requests) carrying the
events of that change is POSTed to the receiver. Its own API writes carry the fake-only header
``X-Fake-HubSpot-Emit: none``, so a fake that emits webhooks does not send a second delivery for them;
real HubSpot ignores the header.

Every setting comes from ``_config()``, as for every other command. Each step prints one line; each
failure is one line saying what to do, exit status 1.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from webhook_service import objects
from webhook_service.cli.shared import _config
from webhook_service.config import Config
from webhook_service.errors import HubhookError, HubSpotAPIError
from webhook_service.objects import ObjectType

#: What ``trigger`` can make happen through HubSpot's API. ``restore`` is missing: only HubSpot's UI
#: (the recycling bin) restores a record.
ACTIONS = ("creation", "propertyChange", "deletion", "merge", "associationChange", "privacyDeletion")
EMIT_HEADER = "X-Fake-HubSpot-Emit"   # the fake's, see webhook_service.testing.fake_hubspot.webhooks
#: Who changed the record, when --change-source/--source-id are not given: a user in HubSpot's UI.
UI_SOURCE = ("CRM_UI", "userId:1001")
DEFAULT_PORTAL = 62515
APP_ID = 54321
#: Property a propertyChange changes when no --set is given, per API type name.
CHANGED = {"contacts": "firstname", "companies": "name", "deals": "dealname", "tickets": "subject",
           "products": "name", "line_items": "name", "notes": "hs_note_body", "tasks": "hs_task_subject"}
#: The type an associationChange links to.
PARTNER = {"contacts": "companies", "companies": "contacts", "deals": "contacts", "tickets": "contacts",
           "line_items": "deals"}
_EXAMPLES = "e.g. deal.creation, contact.propertyChange, company.deletion, deal.merge, p_cars.creation, 2-1234.creation"


class TriggerError(HubhookError):
    """A step of ``hubhook trigger`` failed; the message says what to do."""


def _new_properties(otype: ObjectType, n: int, stamp: str) -> dict[str, str]:
    """Properties a new record gets unless --set says otherwise: enough for HubSpot to accept it."""
    label = f"hubhook trigger {stamp}-{n}"
    return {
        "contacts": {"email": f"trigger-{stamp}-{n}@example.com", "firstname": "Trigger", "lastname": str(n)},
        "companies": {"name": label, "domain": f"trigger-{stamp}-{n}.example.com"},
        "deals": {"dealname": label, "amount": "100", "pipeline": "default", "dealstage": "appointmentscheduled"},
        "tickets": {"subject": label, "hs_pipeline": "0", "hs_pipeline_stage": "1"},
        "products": {"name": label, "price": "10"},
        "line_items": {"name": label, "quantity": "1", "price": "10"},
        "notes": {"hs_note_body": label, "hs_timestamp": str(int(time.time() * 1000))},
        "tasks": {"hs_task_subject": label, "hs_timestamp": str(int(time.time() * 1000))},
    }.get(otype.api_name, {})


def parse_type(subscription_type: str) -> tuple[ObjectType, str]:
    """(object type, action) of ``deal.creation``, ``p_cars.creation``, ``2-1234.propertyChange``..."""
    prefix, _, action = subscription_type.rpartition(".")
    if prefix == objects.GENERIC_PREFIX:
        raise TriggerError(f"{subscription_type!r}: name the object type instead of 'object' ({_EXAMPLES}); "
                           f"types without classic webhooks are sent as object.* events with their objectTypeId")
    try:
        otype = objects.lookup(prefix)
    except KeyError:
        known = ", ".join(t.name for t in objects.KNOWN_TYPES if t.name != "conversation")
        raise TriggerError(f"unknown type {subscription_type!r}: use <object>.<action> with an object of {known}, "
                           f"a custom object as p_<name> or 2-<n> ({_EXAMPLES})") from None
    if otype.name == "conversation":
        raise TriggerError("conversation events cannot be triggered: HubSpot's CRM API does not create threads; "
                           "use `hubhook send-test-event conversation.<action> --object-id N`")
    if action not in ACTIONS or (action == "privacyDeletion" and otype.name != "contact"):
        hint = " (only HubSpot's UI restores a record; use `hubhook send-test-event`)" if action == "restore" else ""
        doable = [a for a in ACTIONS if a != "privacyDeletion" or otype.name == "contact"]
        raise TriggerError(f"cannot trigger {subscription_type!r}{hint}: actions are {', '.join(doable)}")
    return otype, action


@dataclass
class Trigger:
    """One run: the API client that writes, the events it collects, the line it prints per step."""

    config: Config
    otype: ObjectType
    portal_id: int
    change_source: str
    source_id: str | None
    say: Callable[[str], None]

    def __post_init__(self) -> None:
        from jobs.hubspot.client import HubSpotClient
        from jobs.hubspot.portal_client import PortalClient

        client = HubSpotClient(self.config)
        for session in (client.session, client.create_session):
            session.headers[EMIT_HEADER] = "none"
        self.client, self.api = client, PortalClient(client, self.portal_id)
        self.stamp = str(int(time.time() * 1000))
        self.events: list[dict] = []

    # -- CRM writes -------------------------------------------------------------------------------
    def _call(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from webhook_service.errors import TransientAPIError

        try:
            return call(*args, **kwargs)
        except TransientAPIError as exc:
            if exc.status is None:
                raise TriggerError(f"could not reach HubSpot at {self.config.api_base_url} while {what}: start the "
                                   f"fake (python -m webhook_service.testing.fake_hubspot) or set "
                                   f"HUBSPOT_API_BASE_URL") from None
            raise TriggerError(f"HubSpot failed while {what} ({exc.status}): try again") from None
        except HubSpotAPIError as exc:
            message = str(exc.args[0] if exc.args else exc)[:200]
            fix = {401: "check HUBSPOT_ACCESS_TOKEN", 403: "give the token the scope HubSpot names",
                   404: "check the --id and the object type", 409: "use --set to give a unique value"}
            raise TriggerError(f"HubSpot refused {what} ({exc.status} {exc.category or ''}: {message}): "
                               f"{fix.get(exc.status or 0, 'check the --set names and values')}") from None

    def create(self, n: int, properties: dict[str, str]) -> str:
        values = {**_new_properties(self.otype, n, self.stamp), **properties}
        record = self._call(f"creating a {self.otype.name}", self.api.create, self.otype.api_name, values)
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        self.say(f"created {self.otype.name} {record['id']}" + (f" ({shown})" if shown else ""))
        return str(record["id"])

    def existing(self, object_id: str) -> str:
        record = self._call(f"reading {self.otype.name} {object_id}", self.api.get, self.otype.api_name, object_id)
        if record is None:
            raise TriggerError(f"{self.otype.name} {object_id} does not exist in HubSpot at "
                               f"{self.config.api_base_url}: check --id, or leave it out to create one")
        return str(record["id"])

    def targets(self, object_id: str | None, count: int, properties: dict[str, str],
                creating: bool) -> list[str]:
        """The records to change: --id, or ``count`` new ones (given --set unless they are the change)."""
        if object_id is not None:
            return [self.existing(object_id)]
        return [self.create(n, properties if creating else {}) for n in range(1, count + 1)]

    # -- events -------------------------------------------------------------------------------------
    def event(self, action: str, object_id: str, **fields: Any) -> None:
        from webhook_service.testing.deliveries import make_event
        from webhook_service.testing.fake_hubspot.webhooks import subscription_type

        found = subscription_type(self.otype, action)
        if found is None:
            raise TriggerError(f"HubSpot sends no {self.otype.name}.{action} webhooks")
        kind, generic = found
        extra: dict[str, Any] = {"objectTypeId": self.otype.type_id} if generic else {}
        source: dict[str, Any] = {"changeSource": self.change_source}
        if self.source_id is not None:
            source["sourceId"] = self.source_id
        self.events.append(make_event(kind, object_id, portal_id=self.portal_id, app_id=APP_ID,
                                      **extra, **fields, **source))


def run_trigger(trigger: Trigger, action: str, object_id: str | None, count: int,
                properties: dict[str, str]) -> None:
    """Make the change through the API and collect its events in ``trigger.events``."""
    otype, api = trigger.otype, trigger.api
    if action == "creation":
        for record_id in trigger.targets(None, count, properties, creating=True):
            trigger.event("creation", record_id, changeFlag="CREATED")
    elif action == "propertyChange":
        if not properties:
            name = CHANGED.get(otype.api_name)
            if name is None:
                raise TriggerError(f"{otype.name} has no default property to change: pass --set NAME=VALUE")
            properties = {name: f"changed by hubhook trigger {trigger.stamp}"}
        for record_id in trigger.targets(object_id, count, properties, creating=False):
            trigger._call(f"updating {otype.name} {record_id}", api.update, otype.api_name, record_id, properties)
            trigger.say(f"updated {otype.name} {record_id}: " + ", ".join(f"{k}={v}" for k, v in properties.items()))
            for name, value in properties.items():
                trigger.event("propertyChange", record_id, property=name, value=value)
    elif action in ("deletion", "privacyDeletion"):
        for record_id in trigger.targets(object_id, count, properties, creating=True):
            if action == "deletion":
                path = f"{trigger.client.objects_path(otype.api_name)}/{record_id}"
                trigger._call(f"deleting {otype.name} {record_id}", trigger.client.request, "DELETE", path)
                trigger.say(f"deleted {otype.name} {record_id} (archived: restorable for 90 days)")
                trigger.event("deletion", record_id, changeFlag="DELETED")
            else:
                path = f"{trigger.client.objects_path('contacts')}/gdpr-delete"
                trigger._call(f"GDPR-deleting contact {record_id}", trigger.client.request, "POST", path,
                              json={"objectId": record_id})
                trigger.say(f"GDPR-deleted contact {record_id} (permanently)")
                trigger.event("privacyDeletion", record_id)
    elif action == "merge":
        primary = trigger.targets(object_id, 1, properties, creating=True)[0]
        for n in range(count):
            other = trigger.create(count + n + 1, properties)
            path = f"{trigger.client.objects_path(otype.api_name)}/merge"
            merged = trigger._call(f"merging {otype.name} {other} into {primary}", trigger.client.request, "POST", path,
                                   json={"primaryObjectId": primary, "objectIdToMerge": other}).json()
            trigger.say(f"merged {otype.name} {other} into {primary}: the result is {otype.name} {merged['id']}")
            trigger.event("merge", primary, primaryObjectId=int(primary), mergedObjectIds=[int(other)],
                          newObjectId=int(merged["id"]), numberOfPropertiesMoved=0)
            primary = str(merged["id"])
    elif action == "associationChange":
        partner = objects.lookup(PARTNER.get(otype.api_name, "contacts"))
        for record_id in trigger.targets(object_id, count, properties, creating=True):
            other_trigger = Trigger(trigger.config, partner, trigger.portal_id, trigger.change_source,
                                    trigger.source_id, trigger.say)
            other = other_trigger.create(1, {})
            trigger._call(f"associating {otype.name} {record_id} with {partner.name} {other}", api.associate,
                          otype.api_name, record_id, partner.api_name, other)
            trigger.say(f"associated {otype.name} {record_id} with {partner.name} {other}")
            fields: dict[str, Any] = {"fromObjectId": int(record_id), "toObjectId": int(other),
                                      "associationRemoved": False, "isPrimaryAssociation": False}
            if otype.name in ("contact", "company", "deal", "ticket", "line_item"):
                fields["associationType"] = f"{otype.name}_TO_{partner.name}".upper()
            else:
                fields.update(fromObjectTypeId=otype.type_id, toObjectTypeId=partner.type_id)
            trigger.event("associationChange", record_id, **fields)


def send(config: Config, target: str, events: list[dict]) -> int:
    """Sign and POST one delivery; the receiver's status, or TriggerError when it cannot be reached."""
    import requests

    from webhook_service.cli.dev import signed_request

    request = signed_request(target, events, config.client_secrets[0])
    try:
        with requests.Session() as session:
            settings = session.merge_environment_settings(str(request.url), {}, None, None, None)
            response = session.send(request, timeout=10.0, **settings)
    except requests.RequestException as exc:
        raise TriggerError(f"could not reach the receiver at {target} ({type(exc).__name__}): start it (`hubhook run`, "
                           f"or `hubhook web` and `hubhook worker`), or pass --url") from None
    if response.status_code >= 300:
        hint = {401: "HUBSPOT_CLIENT_SECRET here must be the receiver's, and HUBHOOK_WEBHOOK_URL the URL it is "
                     "reached at (or pass --url)",
                404: "is --url the receiver's /webhooks/hubspot path?"}.get(response.status_code, "see its log")
        raise TriggerError(f"the receiver at {target} answered {response.status_code} "
                           f"{response.text.strip()[:120]}: {hint}")
    return response.status_code


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        name, eq, rest = value.partition("=")
        if not eq or not name.strip():
            raise TriggerError(f"--set {value!r}: give NAME=VALUE, e.g. --set dealstage=closedwon")
        out[name.strip()] = rest
    return out


@click.command("trigger")
@click.argument("subscription_type", metavar="TYPE")
@click.option("--id", "object_id", help="Change this existing object instead of creating one.")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="A property to write (repeatable): of the new object, or the change of a propertyChange.")
@click.option("--events", "count", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Objects (and events) in the one delivery.")
@click.option("--change-source", help="changeSource of the events (default CRM_UI), e.g. INTEGRATION.")
@click.option("--source-id", help="sourceId of the events (default userId:1001 with CRM_UI), e.g. your app id.")
@click.option("--portal-id", type=int, help="portalId of the events (default: $HUBSPOT_PORTAL_ID or 62515).")
@click.option("--url", help="Receiver URL (default: $HUBHOOK_WEBHOOK_URL or http://localhost:$PORT/webhooks/hubspot).")
def trigger(subscription_type: str, object_id: str | None, settings: tuple[str, ...], count: int,
            change_source: str | None, source_id: str | None, portal_id: int | None, url: str | None) -> None:
    """Create or change an object in HubSpot (the fake, or a test account), then send its signed webhook."""
    try:
        otype, action = parse_type(subscription_type)
        properties = _pairs(settings)
        if object_id is not None and action == "creation":
            raise TriggerError("--id changes an existing object; creation makes a new one: leave --id out")
        if object_id is not None and count > 1:
            raise TriggerError(f"--events {count} makes {count} new objects, --id changes one: give one of them")
        if object_id is not None and not object_id.isdigit():
            raise TriggerError(f"--id {object_id!r}: HubSpot record ids are digits")
        config = _config().require_secret()
        if not config.access_token:
            raise TriggerError("no HubSpot token: set HUBSPOT_ACCESS_TOKEN (any value works against the fake "
                               "HubSpot) and HUBSPOT_API_BASE_URL")
        if change_source is None and source_id is None:
            change_source, source_id = UI_SOURCE
        target = url or config.webhook_url or f"http://localhost:{config.port}/webhooks/hubspot"
        run = Trigger(config, otype, portal_id or config.portal_id or DEFAULT_PORTAL, change_source or "CRM_UI",
                      source_id, click.echo)
        run_trigger(run, action, object_id, count, properties)
        status = send(config, target, run.events)
    except HubhookError as exc:
        click.echo(f"hubhook: error: {exc}", err=True)
        sys.exit(1)
    kinds = sorted({e["subscriptionType"] for e in run.events})
    click.echo(f"sent {len(run.events)} event(s) ({', '.join(kinds)}) to {target}: {status}")
