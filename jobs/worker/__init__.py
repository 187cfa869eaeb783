"""The ``hubhook worker`` process.

- ``worker``: ``HubhookWorker``, RQ's SimpleWorker with short heartbeats and quick recovery (its
  stock twin ``StockHubhookWorker`` runs on an untested RQ or with ``HUBHOOK_FAST_PATHS=0``), and
  ``run``/``build_worker``. The parts that override RQ's internals live in
  ``webhook_service.private_apis``.
- ``context``: what a worker process builds once and every job reuses (config, Redis, router,
  API clients, locks).
- ``accounting``: the bookkeeping around each job: figures, object histories, the pending-events
  counter, the events of a failed delivery.
- ``recording``: each job and handler run recorded three ways: a log line, figures, history.
- ``allowlist``: the only job functions a worker runs (Redis write access must not be code
  execution); anything else is refused into the failed registry with one log line.
"""
