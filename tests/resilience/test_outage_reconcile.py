"""The receiver is down for a "10-minute" outage; reconciliation polling heals it.

HubSpot retries a failed webhook for about a day and then drops it, and a receiver that was down, or
a webhook that was lost, leaves a change no handler saw. With ``HUBHOOK_RECONCILE_INTERVAL`` set,
``hubhook poll`` also walks the webhook types (here contacts) and hands on what no webhook delivered,
dropping what one did. Time is compressed 60x: the outage lasts 10 s, the reconcile interval is 1 s
(a minute, in real time), and the poll looks back 2 s for the webhooks of recent changes to arrive.
The webhooks HubSpot sent during the outage are lost for good (the sender gives up at once).
"""
import time

import pytest

from jobs.poller.cursor import Cursor
from webhook_service.testing import make_event

from ..conftest import SECRET
from .conftest import pending_work, quiescent
from .procs import wait_until
from .sender import Sender

pytestmark = pytest.mark.resilience
BEFORE, DURING, AFTER, OUTAGE = range(1, 31), range(31, 91), range(91, 121), 10.0


def change(hubspot, object_id: int) -> dict:
    """Create a contact in HubSpot and return the webhook event HubSpot would send for it."""
    now_ms = int(time.time() * 1000)
    hubspot.add("contacts", object_id, {"email": f"c{object_id}@example.com"}, modified_at_ms=now_ms)
    return make_event("contact.creation", object_id, occurred_at=now_ms)


def test_changes_made_while_the_receiver_was_down_reach_the_handlers_by_reconciliation(stack, hubspot, ledger,
                                                                                      stack_client):
    # Given the receiver, a worker and a poller reconciling contacts every second
    env = {"HUBHOOK_RECONCILE_INTERVAL": "1", "HUBHOOK_POLL_LOOKBACK": "2", "HUBHOOK_ARCHIVE_SWEEP_INTERVAL": "0",
           "HUBHOOK_POLL_LOCK_TTL": "3"}
    web = stack.web(**env)
    stack.workers(1, **env)
    stack.daemon("poll", **env)
    cursor = Cursor(stack_client, 0, "contact", "search")
    wait_until(lambda: cursor.load().position is not None, 30, "the poller to start reconciling contacts")
    sender = Sender(web.url, SECRET, give_up_after=0.5)
    # and 30 contacts created and delivered by webhook before the outage
    sender.send([[change(hubspot, i)] for i in BEFORE])
    assert not sender.unacked()

    # When the receiver goes down for 10 s while 60 more contacts are created, their webhooks lost
    web.stop()
    hooks = []
    for i in DURING:
        hooks.append([change(hubspot, i)])
        time.sleep(OUTAGE / len(DURING))  # the outage's pace
    lost = Sender(web.url, SECRET, give_up_after=0.2).send(hooks)
    assert len(lost.unacked()) == len(DURING) and not lost.results["200"]
    # and then it comes back and 30 more contacts are delivered by webhook
    web = stack.web(**env)
    sender = Sender(web.url, SECRET)
    sender.send([[change(hubspot, i)] for i in AFTER])
    assert not sender.unacked()
    last_change_ms = max(e["occurredAt"] for d in sender.deliveries for e in d.events)

    # Then every contact reaches the handler, the lost ones through reconciliation...
    everyone = {str(i) for r in (BEFORE, DURING, AFTER) for i in r}
    try:
        wait_until(lambda: set(ledger.object_calls()) >= everyone, 60, "every contact to reach the handler")
    finally:
        calls = ledger.object_calls()
        print(f"\nR11: handled {len(set(calls) & everyone)}/{len(everyone)} contacts; by poll "
              f"{len(ledger.delivered_by('poll'))}, by webhook {len(ledger.delivered_by('webhook'))}; "
              f"duplicates {sum(n - 1 for n in calls.values())}; pending {pending_work(stack_client)}")
    assert {str(i) for i in DURING} <= ledger.delivered_by("poll")
    # ...and once reconciliation has walked past the last change, none was handled twice: what a
    # webhook delivered is not delivered again by the poll
    wait_until(lambda: (cursor.load().position or 0) >= last_change_ms and quiescent(stack_client), 30,
               "reconciliation to walk past the last change")
    calls = ledger.object_calls()
    assert set(calls.values()) == {1}, {k: n for k, n in calls.items() if n > 1}
