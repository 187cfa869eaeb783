"""How a hubhook user tests handlers: ``examples/demo_handlers.py`` under hubhook's pytest plugin.

The fixtures (``run_handlers``, ``hubspot_fake``, ``signed_delivery``) come from the plugin that
installing hubhook registers; no conftest, no Redis, no HubSpot account. ``run_handlers`` validates
the change as the receiver would, fetches what each handler declared from the fake HubSpot through
hubhook's real enrichment, and calls the matching handlers in this process.
"""
from examples.demo_handlers import router
from webhook_service.testing import make_event


def test_stage_changed_gets_the_deal_and_who_is_on_it(run_handlers):
    run = run_handlers(router, make_event("deal.propertyChange", 7, property="dealstage", value="closedwon"),
                       records={"deals": {7: {"dealname": "Big deal", "dealstage": "closedwon", "amount": "10"}},
                                "contacts": {1: {"email": "ada@example.com"}}},
                       associations=[("deals", 7, "contacts", 1)])
    event = run.event("stage_changed")
    assert event.record["properties"]["dealname"] == "Big deal"
    assert event.associations == {"contacts": ["1"], "companies": []}


def test_one_delivery_calls_each_matching_handler_once_per_object(run_handlers, capsys):
    # Given a delivery with two changes of one deal and a new contact
    changes = [make_event("deal.propertyChange", 7, property="dealstage", value=v, occurred_at=t)
               for t, v in ((1, "appointmentscheduled"), (2, "closedwon"))]
    changes.append(make_event("contact.creation", 1))
    # When the handlers run
    run = run_handlers(router, changes, records={"deals": {7: {"dealname": "x", "dealstage": "closedwon"}},
                                                 "contacts": {1: {"email": "ada@example.com"}}})
    # Then stage_changed saw both changes in one call, and welcome printed the contact's email
    assert sorted(run.called) == ["examples.demo_handlers.stage_changed", "examples.demo_handlers.welcome"]
    assert [c["propertyValue"] for c in run.event("stage_changed").changes] == ["appointmentscheduled", "closedwon"]
    assert "<ada@example.com>" in capsys.readouterr().out


def test_a_deletion_reaches_its_handler_without_a_record(run_handlers, hubspot_fake):
    run = run_handlers(router, make_event("deal.deletion", 9))
    assert run.event("deal_deleted").record is None
    assert hubspot_fake.count() == 0   # a deleted object costs no API call


def test_changes_hubhook_made_itself_can_be_ignored(run_handlers):
    echo = make_event("deal.propertyChange", 7, property="dealstage", value="closedwon",
                      changeSource="INTEGRATION", sourceId="appId:54321")
    run = run_handlers(router, echo, ignore_sources=["appId:54321"], records={"deals": {7: {"dealname": "x"}}})
    assert run.called == [] and len(run.suppressed) == 1


def test_signed_delivery_signs_like_hubspot(signed_delivery, hubhook_secret, hubhook_webhook_url):
    from webhook_service.receiver.signature import verify

    body, headers = signed_delivery([make_event("contact.creation", 1)])
    assert verify(headers, body, secrets=[hubhook_secret], method="POST", uri=hubhook_webhook_url) == "v3"
