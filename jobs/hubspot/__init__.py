"""The HubSpot API client every job, poller and handler uses.

- ``client``: ``HubSpotClient``: batch reads, search, associations, writes; where a 429, a 5xx or a
  refused token is turned into a retry, a wait or an error from ``webhook_service.errors``.
- ``rate_budget``: one rate budget (10-second burst, search per second, daily) shared by every
  process through Redis.
- ``tokens``: which token, and which budget, a call for a given portal uses (private app or OAuth).
- ``portal_client``: ``event.hubspot``: the client bound to the event's portal, with write-backs.
"""
