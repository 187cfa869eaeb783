"""The only place Redis clients and queues are built (key names: ``webhook_service.keys``).

Every process (receiver, worker, poller, CLI) gets its Redis and its queue from here, so the
serializer and timeouts cannot drift apart. Jobs use RQ's JSON serializer: job
arguments are plain JSON (validated events), never pickles and never secrets.
"""
from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from webhook_service import private_apis
from webhook_service.config import Config


def redis_client(config: Config, *, socket_timeout: float | None = 5.0) -> Redis:
    """A Redis client for ``config.redis_url``.

    The receiver keeps the default 5 s socket timeout so a stuck Redis becomes a 503 HubSpot will
    retry, long before HubSpot's own 5 s delivery timeout matters; RQ workers raise it themselves for
    their blocking dequeue.
    """
    return Redis.from_url(config.redis_url, socket_timeout=socket_timeout, socket_connect_timeout=3.0,
                          health_check_interval=30)


def queue(config: Config, connection: Redis | None = None) -> Queue:
    """The one RQ queue every hubhook job goes through.

    One queue, because RQ's loss-free dequeue (BLMOVE into the worker's intermediate queue) only
    holds when a worker listens to a single queue. Building it applies the config's
    ``HUBHOOK_FAST_PATHS`` to this process (``webhook_service.private_apis``): every process that
    enqueues or works builds its queue here first.
    """
    private_apis.configure(config)
    return Queue(config.queue_name, connection=connection or redis_client(config), serializer=JSONSerializer)
