"""The only place Redis clients and queues are built (key names: ``webhook_service.keys``).

Every process (receiver, worker, poller, CLI) gets its Redis and its queue from here, so the
serializer and timeouts cannot drift apart. Jobs use RQ's JSON serializer: job
arguments are plain JSON (validated events), never pickles and never secrets.

``REDIS_URL`` names one Redis (``redis://``, ``rediss://``, ``unix://``) or a Redis Sentinel
deployment: ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]`` (``rediss+sentinel``
for TLS to the master). redis-py has no URL form for Sentinel, so this module reads it: the sentinels
are asked for the master of ``service``, and a client asks again after a failover (redis-py's
``SentinelConnectionPool``), so every process follows the master without a restart.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from redis import Redis
from redis.sentinel import Sentinel
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
    return connect(config.redis_url, socket_timeout=socket_timeout, socket_connect_timeout=3.0,
                   health_check_interval=30)


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True)
class SentinelAddress:
    """What a ``redis+sentinel://`` URL says: the sentinels, the master's service name, db, password."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None
    username: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> SentinelAddress:
        """Read ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``; ValueError if malformed."""
        parsed = urlparse(url)
        if parsed.scheme not in SENTINEL_SCHEMES:
            raise ValueError(f"not a Sentinel URL: {parsed.scheme}://")
        hosts = parsed.netloc.rpartition("@")[2]
        sentinels = []
        for item in filter(None, hosts.split(",")):
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"each sentinel must be host:port, got {item!r}")
            sentinels.append((host.strip("[]"), int(port)))
        path = [part for part in parsed.path.split("/") if part]
        if not sentinels or not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError("expected redis+sentinel://host:port[,host:port...]/service[/db]")
        return cls(tuple(sentinels), unquote(path[0]), int(path[1]) if len(path) == 2 else 0,
                   unquote(parsed.password) if parsed.password else None,
                   unquote(parsed.username) if parsed.username else None, parsed.scheme.startswith("rediss"))


def connect(url: str, **options) -> Redis:
    """A client for ``url``: one Redis, or the current master of a Sentinel deployment."""
    if urlparse(url).scheme in SENTINEL_SCHEMES:
        address = SentinelAddress.parse(url)
        sentinel_options = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
        sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_options,
                            password=address.password, username=address.username, ssl=address.tls, **options)
        return sentinel.master_for(address.service, db=address.db)
    return Redis.from_url(url, **options)


def queue(config: Config, connection: Redis | None = None) -> Queue:
    """The one RQ queue every hubhook job goes through.

    One queue, because RQ's loss-free dequeue (BLMOVE into the worker's intermediate queue) only
    holds when a worker listens to a single queue. Building it applies the config's
    ``HUBHOOK_FAST_PATHS`` to this process (``webhook_service.private_apis``): every process that
    enqueues or works builds its queue here first.
    """
    private_apis.configure(config)
    return Queue(config.queue_name, connection=connection or redis_client(config), serializer=JSONSerializer)
