"""What an operator reads and does, straight from Redis.

- ``status_report``: queue, backlog, workers, pollers and dead letters for ``hubhook status`` and ``/metrics``.
- ``dead_letters``: the dead-letter registry (RQ's failed-job registry), listed and replayed by
  handler name and age.
"""
