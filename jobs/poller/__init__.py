"""The ``hubhook poll`` process: CRM search for the types HubSpot sends no webhooks for.

- ``main``: the process: leadership, the loop over streams, status rows for ``hubhook status``.
- ``leader``: exactly one active poller across machines (a Redis lock renewed while it works).
- ``polled_types``: which object types are polled and how a walked page becomes a delivery job.
- ``search_pass``: one pass over one stream: walk from the cursor, deliver each page, advance it.
- ``property_changes``: propertyChange events for ``property=`` handlers, from the property history.
- ``search_walk``: walk CRM search in modified-date order without asking past its 10,000 cap.
- ``cursor``: where each (portal, type) stream stands, and what it already delivered.
- ``archive_sweep``: deletions of polled types, found in the archived list.
- ``reconcile``: slow polling of webhook types, dropping what a webhook already delivered.
- ``backfill``: ``hubhook poll --backfill``: history, resumably, with a progress bar.
"""
