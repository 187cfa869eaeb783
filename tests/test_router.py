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
    ("conversation.propertyChange", {"property": "status"}, "deal"),
])
def test_handlers_that_can_fire_under_the_config_pass_the_check(pattern, options, webhook_types):
    router = Router()
    router.add(handler, pattern, **options)
    assert router.check_against(Config.from_env({"HUBHOOK_WEBHOOK_TYPES": webhook_types})) is router


@pytest.mark.parametrize("options, shown", [
    ({"property": "hs_pipeline_stage"}, "property="),
    ({"property": "hs_pipeline_stage", "to": "4"}, "property=/to="),
    ({"property": "hs_pipeline_stage", "from_": "1", "to": "4"}, "property=/to=/from_="),
])
def test_a_property_handler_on_a_polled_type_fails_the_check_with_the_reason_and_the_fix(options, shown):
    # Given a ticket handler watching one property, and tickets polled (not in HUBHOOK_WEBHOOK_TYPES)
    router = Router()
    router.add(handler, "ticket.propertyChange", name="stage_moved", **options)
    config = Config.from_env({"HUBHOOK_WEBHOOK_TYPES": "contact,deal"})
    # When a process checks its router against its config, then it refuses, naming what and why
    with pytest.raises(RegistrationError) as raised:
        router.check_against(config)
    message = str(raised.value)
    assert "'stage_moved'" in message and f"uses {shown} on 'ticket.propertyChange'" in message
    assert "ticket is polled (not in HUBHOOK_WEBHOOK_TYPES=contact,deal)" in message
    assert "add ticket to HUBHOOK_WEBHOOK_TYPES" in message and "compare event.record yourself" in message
