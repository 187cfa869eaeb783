"""Registration is validated at import, with the fix in the message; matching follows HubSpot's types."""
import pytest

from webhook_service import RegistrationError, Router
from webhook_service.config import Config
from webhook_service.testing import make_event


def handler(event):
    return event


@pytest.mark.parametrize("pattern, options, message", [
    ("contcat.creation", {}, "unknown object type 'contcat'"),
    ("deal.newMessage", {}, "HubSpot sends no 'deal.newMessage' events"),
    ("product.associationChange", {}, "HubSpot sends no"),
    ("deal.creation", {"property": "dealstage"}, "property= only works with"),
    ("deal.*", {"property": "dealstage"}, "register for deal.propertyChange"),
    ("deal.creation", {"assocations": ["contacts"]}, "unknown option 'assocations'"),
    ("deal.creation", {"associations": ["contact_lists"]}, "unknown association type"),
    ("deal.creation", {"properties": "dealname"}, "must be a list of names"),
    ("dealcreation", {}, "must be '<object>.<action>'"),
])
def test_invalid_registrations_raise_with_the_fix(pattern, options, message):
    router = Router()
    with pytest.raises(RegistrationError, match=message):
        router.add(handler, pattern, **options)
    assert router.handlers == []


def test_a_name_registered_twice_fails_and_name_option_resolves_it():
    router = Router()
    router.add(handler, "deal.creation")
    with pytest.raises(RegistrationError, match="already registered; pass name="):
        router.add(handler, "deal.deletion")
    assert router.add(handler, "deal.deletion", name="other").name == "other"


def test_decorator_returns_the_function_unchanged():
    router = Router()
    decorated = router.on("contact.creation")(handler)
    assert decorated is handler
    assert router.handlers[0].name == f"{__name__}.handler"


@pytest.mark.parametrize("pattern, options, event, expected", [
    ("deal.propertyChange", {"property": "dealstage"}, make_event("deal.propertyChange", 1, property="dealstage"),
     True),
    ("deal.propertyChange", {"property": "dealstage"}, make_event("deal.propertyChange", 1, property="amount"), False),
    ("deal.*", {}, make_event("deal.deletion", 1), True),
    ("deal.*", {}, make_event("contact.deletion", 1), False),
    ("*", {}, make_event("conversation.newMessage", 1, messageId="m"), True),
    ("ticket.creation", {}, make_event("object.creation", 1, objectTypeId="0-5"), True),
    ("2-99.*", {}, make_event("object.propertyChange", 1, objectTypeId="2-99", property="x"), True),
    ("object.creation", {}, make_event("object.creation", 1, objectTypeId="0-3"), True),
])
def test_matching(pattern, options, event, expected):
    router = Router()
    router.add(handler, pattern, **options)
    assert bool(router.matching(event)) is expected


def test_object_types_lists_concrete_types_for_the_poller():
    router = Router()
    router.add(handler, "ticket.*", name="a")
    router.add(handler, "line_item.creation", name="b")
    router.add(handler, "*", name="c")
    router.add(handler, "p_widgets.*", name="d")
    assert router.object_types() == {"ticket", "line_item", "p_widgets"}


@pytest.mark.parametrize("pattern, options, webhook_types", [
    ("deal.propertyChange", {"property": "dealstage", "to": "closedwon"}, "contact,company,deal"),
    ("ticket.propertyChange", {"property": "hs_pipeline_stage", "from_": "1"}, "deal,tickets"),
    ("ticket.*", {"properties": ["subject"]}, "deal"),
    ("object.propertyChange", {"property": "subject"}, "deal"),
    ("conversation.propertyChange", {"property": "status"}, "deal,conversation"),
    # polled types: the poller reads the watched properties' history (jobs.poller.property_changes)
    ("ticket.propertyChange", {"property": "hs_pipeline_stage"}, "contact,deal"),
    ("ticket.propertyChange", {"property": "hs_pipeline_stage", "from_": "1", "to": "4"}, "contact,deal"),
    ("line_item.propertyChange", {"property": "quantity", "to": "2"}, "deal"),
    ("p_widgets.propertyChange", {"property": "size"}, "deal"),
])
def test_handlers_that_can_fire_under_the_config_pass_the_check(pattern, options, webhook_types):
    router = Router()
    router.add(handler, pattern, **options)
    assert router.check_against(Config.from_env({"HUBHOOK_WEBHOOK_TYPES": webhook_types})) is router


@pytest.mark.parametrize("options, shown", [
    ({"property": "status"}, "property="),
    ({"property": "status", "to": "CLOSED"}, "property=/to="),
    ({"property": "status", "from_": "OPEN", "to": "CLOSED"}, "property=/to=/from_="),
])
def test_a_property_handler_on_a_type_the_poller_cannot_walk_fails_the_check_with_the_reason(options, shown):
    # Given a conversation handler watching one property, and conversations not sent by webhook: threads
    # have no CRM search and no property history, so the poller cannot see them change
    router = Router()
    router.add(handler, "conversation.propertyChange", name="thread_closed", **options)
    config = Config.from_env({"HUBHOOK_WEBHOOK_TYPES": "contact,deal"})
    # When a process checks its router against its config, then it refuses, naming what, why and the fix
    with pytest.raises(RegistrationError) as raised:
        router.check_against(config)
    message = str(raised.value)
    assert "'thread_closed'" in message and f"uses {shown} on 'conversation.propertyChange'" in message
    assert "conversation is not in HUBHOOK_WEBHOOK_TYPES=contact,deal" in message
    assert "no CRM search or property history" in message
    assert "add conversation to HUBHOOK_WEBHOOK_TYPES" in message
