"""One delivery's job, in the order it runs.

- ``job``: ``process_delivery`` and ``run_handler``: group changes by object, fetch, call each
  matching handler once, hand a failing handler its own retry job.
- ``batching``: a delivery job takes the small deliveries queued behind it along (one batch read
  serves many), and gives them back if it dies.
- ``fetching``: records and associations in as few HubSpot calls as the batch endpoints allow.
- ``dispatch``: the decisions that need the fetched record: echo suppression, ``from_=`` filters.
- ``parking``: work HubSpot did not let a job finish (429, missing scopes, no token, outages) is
  rescheduled or parked in the dead-letter registry, never dropped.
"""
