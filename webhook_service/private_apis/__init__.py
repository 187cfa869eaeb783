"""Every place hubhook overrides or copies a dependency's private internals, and nothing else.

hubhook's fast paths lean on code RQ and CPython do not promise to keep. Each has a stock twin that
uses only their public behaviour, and they run only where they were tested:

- ``lean_worker``: ``LeanMixin``, fewer Redis round trips per job than RQ's SimpleWorker.
- ``recovery``: ``RecoveryMixin`` and RQ's recovery passes retuned, so a killed worker's job runs
  again quickly.
- ``rq_enqueue``: the commands ``Queue.enqueue_job`` would send, recorded unsent, which the
  receiver's intake script replays with its dedupe in one round trip.
- ``json_identity``: the event-identity JSON encoder, built once from CPython's private
  ``json.encoder.c_make_encoder``.
- ``written_against``: every RQ, redis-py and CPython function the above override, copy or rely
  on, with a hash of the source they were written against (the drift tripwire:
  ``tests/test_private_apis.py`` fails when one changes).

``enabled()`` says which paths run: the fast ones when the installed RQ is the version they were
tested with (``TESTED_RQ_VERSION``) and ``HUBHOOK_FAST_PATHS`` is not 0; otherwise, after one
warning for an untested RQ, the stock ones: the worker is RQ's SimpleWorker with hubhook's
bookkeeping (``jobs.worker.worker.StockHubhookWorker``), the intake enqueues with
``queue.enqueue_job`` and the identity encoder is ``json.JSONEncoder.encode``.
"""
from __future__ import annotations

import logging

import rq

from webhook_service.config import Config
from webhook_service.private_apis import json_identity

#: The RQ release the fast paths were written against and tested with (setup.cfg allows its series).
TESTED_RQ_VERSION = "3.0.0"

log = logging.getLogger("hubhook")
_setting = True
_warned = False
_enabled: bool | None = None


def rq_tested(version: str) -> bool:
    """Whether ``version`` is the RQ the fast paths were tested with; the first time it is not, one
    warning says that the stock paths run instead."""
    global _warned
    if version == TESTED_RQ_VERSION:
        return True
    if not _warned:
        _warned = True
        log.warning("RQ %s is installed but hubhook's fast paths were written against RQ %s: using RQ's "
                    "stock worker and enqueue instead (correct, a few Redis round trips slower a job). "
                    "Install rq==%s for the fast paths.", version, TESTED_RQ_VERSION, TESTED_RQ_VERSION)
    return False


def enabled() -> bool:
    """Whether this process uses the fast paths (decided on first use, or by ``configure``)."""
    global _enabled
    if _enabled is None:
        _enabled = _setting and rq_tested(rq.__version__)
        json_identity.select(_enabled)
    return _enabled


def configure(config: Config) -> bool:
    """Apply this process's ``HUBHOOK_FAST_PATHS`` (``config.fast_paths``); return whether the fast
    paths are on. Every process calls it where it builds its Redis and queue from the config."""
    global _setting, _enabled
    _setting, _enabled = config.fast_paths, None
    return enabled()
