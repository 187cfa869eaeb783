"""HUBSPOT_API_VERSION names a version HubSpot ships: a dated one (every March and September) or the
legacy v3 paths. Anything else fails at start-up with the valid form, not later with 404s."""
import pytest

from webhook_service.config import Config
from webhook_service.errors import ConfigError


@pytest.mark.parametrize("version", ["2026-03", "2026-09", "2027-03", "v3"])
def test_shipped_versions_and_the_legacy_paths_are_accepted(version):
    assert Config.from_env({"HUBSPOT_API_VERSION": version}).validated().api_version == version


@pytest.mark.parametrize("version", ["2026-05", "2026-12", "2026-3", "v4", "latest"])
def test_a_version_hubspot_never_ships_fails_naming_the_valid_form(version):
    # When hubhook starts with a month HubSpot ships no version in
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"HUBSPOT_API_VERSION": version}).validated()
    # Then the error names the setting, the value and what to write instead
    message = str(refused.value)
    assert "HUBSPOT_API_VERSION" in message and repr(version) in message
    assert "2026-03 or 2026-09" in message and "v3" in message
