"""hubhook's background side: what runs inside ``hubhook worker`` and ``hubhook poll``.

- ``process``: the job functions RQ calls by dotted path (a wire format: names stored in Redis).
- ``delivery/``: one delivery's job: batching the backlog, fetching records, dispatching to
  handlers, retrying a failed handler alone and parking what cannot finish.
- ``hubspot/``: the HubSpot API client: requests, the shared rate budget, tokens per portal,
  write-backs bound to an event's portal.
- ``worker/``: the ``hubhook worker`` process: the RQ worker, its per-process context, the
  bookkeeping and records written around each job.
- ``poller/``: the ``hubhook poll`` process: leadership, the search walk and its cursor, the
  archived sweep, reconciliation and backfill.
- ``mirror/``: the built-in Postgres mirror (HUBHOOK_MIRROR_URL): its handlers, migrations, batched
  writes with the version guard, typed views, and ``hubhook mirror status|check|backfill``.

``jobs`` imports ``webhook_service``; ``webhook_service`` reaches ``jobs`` only by dotted path
(``webhook_service.keys``) and from its two entry points, the CLI and the test kit.
"""
