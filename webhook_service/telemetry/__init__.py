"""Figures that every process writes to Redis and ``/metrics`` reads.

- ``stats``: worker and poller figures (handler runs, API calls, rate-budget waits).
- ``backlog``: how many accepted events wait: the count back-pressure compares to its limit.
- ``object_history``: what hubhook last saw and did for one object (``hubhook inspect``).
- ``prometheus``: the collector behind ``/metrics`` for every figure that lives in Redis.
"""
