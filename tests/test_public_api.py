"""The public API is explicit and pinned: a change here is a change users see."""
import re
import types

import webhook_service
import webhook_service.errors
import webhook_service.testing


def test_exported_members_are_pinned():
    assert webhook_service.__all__ == [
        "Config", "ConfigError", "Event", "Handler", "HubSpotAPIError", "HubhookError", "MirrorUnavailable",
        "MissingScopes", "NoToken", "OAuthRefused", "PayloadError", "RateLimited", "RegistrationError", "Router",
        "SignatureError", "TransientAPIError",
    ]
    assert all(hasattr(webhook_service, name) for name in webhook_service.__all__)


def test_all_is_exactly_the_public_names_of_the_module():
    """httpx's converse check: nothing public is left out of ``__all__``, nothing in it is not there.
    Sub-packages (``webhook_service.testing``...) become attributes when imported; they are not names."""
    public = [name for name, value in vars(webhook_service).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)]
    assert sorted(webhook_service.__all__) == sorted(public)


def test_the_docstring_documents_every_exported_name():
    documented = set(re.findall(r"``(\w+)``", webhook_service.__doc__ or "")) | {"Router", "Event"}
    assert set(webhook_service.__all__) <= documented


def test_every_error_a_user_can_catch_is_exported_and_in_the_one_tree():
    errors = {name for name, value in vars(webhook_service.errors).items()
              if isinstance(value, type) and issubclass(value, webhook_service.HubhookError)}
    assert errors <= set(webhook_service.__all__)
    assert all(name in (webhook_service.errors.__doc__ or "") for name in errors)
    from webhook_service.oauth import flow
    assert flow.OAuthRefused is webhook_service.OAuthRefused


def test_testing_helpers_are_exported():
    assert set(webhook_service.testing.__all__) >= {"FakeHubSpot", "make_event", "post_delivery", "signed_delivery"}


def test_events_are_read_only_plain_data():
    import json

    import pytest

    event = webhook_service.Event.build(object_type="deal", object_id=1, portal_id=2, subscription_type="deal.creation",
                                        record={"id": "1", "properties": {"a": "b"}}, associations={"contacts": [3]})
    assert event.associations["contacts"] == ["3"]
    assert json.loads(json.dumps(event.record)) == {"id": "1", "properties": {"a": "b"}}
    with pytest.raises(TypeError, match="read-only"):
        event.record["properties"]["a"] = "c"
    with pytest.raises(TypeError, match="read-only"):
        event.associations["contacts"].append("4")
    with pytest.raises(AttributeError):
        event.object_id = "2"
