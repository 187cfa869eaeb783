"""Registration is validated at import, with the fix in the message; matching follows HubSpot's types."""
import pytest

from webhook_service import RegistrationError, Router
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
