"""The public API is explicit and pinned: a change here is a change users see."""
import webhook_service
import webhook_service.testing


def test_exported_members_are_pinned():
    assert webhook_service.__all__ == [
        "Config", "ConfigError", "Event", "Handler", "HubSpotAPIError", "HubhookError", "MissingScopes",
        "PayloadError", "RateLimited", "RegistrationError", "Router", "SignatureError", "TransientAPIError",
    ]
    assert all(hasattr(webhook_service, name) for name in webhook_service.__all__)


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
