"""The job functions RQ calls by dotted path, kept at the paths the first release stored in Redis.

A queued job names its function as text (``jobs.process.process_delivery``, ``jobs.process.run_handler``;
``webhook_service.keys`` holds both), so these names are a wire format: jobs queued by an earlier
release must still run after an upgrade. The work itself lives in ``jobs.delivery.job``.
"""
from jobs.delivery.job import process_delivery, run_handler

__all__ = ["process_delivery", "run_handler"]
