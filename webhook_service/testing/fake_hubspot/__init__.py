"""A fake HubSpot API served over real HTTP, answering (and refusing) as HubSpot does.

- ``server``: ``FakeHubSpot``, the Flask app on a free port, its portals and its call log.
- ``crm``: the CRM object routes (read, list, batch, search, writes) and conversations threads.
- ``associations``: associations v4 batch read and default-association create.
- ``auth``: bearer tokens and the OAuth token endpoint.
- ``policy``: what happens before the CRM sees a request: rate limits, injected faults, the call log.
- ``properties``: each type's property catalogue, so writes of unknown properties or bad numbers
  are refused as HubSpot refuses them.
- ``store``: one portal's records, archive, merges, associations and threads.
- ``webhooks``: the signed, batched, retried webhooks a portal sends its app on every write.
- ``index`` / ``search``: what CRM search can see of a type, and how a search request runs on it.
- ``shapes`` / ``http``: HubSpot's JSON shapes and error bodies; request parsing.
- ``demo``: ``python -m webhook_service.testing.fake_hubspot --seed-demo``, a small CRM for ``make demo``.
"""
from webhook_service.testing.fake_hubspot.server import FakeHubSpot

__all__ = ["FakeHubSpot"]
