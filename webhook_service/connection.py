"""The only place Redis clients and queues are built (key names: ``webhook_service.keys``).

Every process (receiver, worker, poller, CLI) gets its Redis and its queue from here, so the
serializer and timeouts cannot drift apart. Jobs use RQ's JSON serializer: job
arguments are plain JSON (validated events), never pickles and never secrets.

``REDIS_URL`` names one Redis (``redis://``, ``rediss://``, ``unix://``) or a Redis Sentinel
deployment: ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]`` (``rediss+sentinel``
for TLS to the master). redis-py has no URL form for Sentinel, so this module reads it: the sentinels
are asked for the master of ``service``, and a client asks again after a failover (redis-py's
``SentinelConnectionPool``), so every process follows the master without a restart.

``redis+cluster://host:port[,host:port...]`` names a Redis Cluster. Every key hubhook and RQ write
carries the hash tag of ``RQ_KEY_PREFIX`` (e.g. ``{hubhook}:rq``; ``webhook_service.keys``), so they all
live in one slot, on one master. hubhook therefore talks to that master over plain connections
(``SlotOwnerConnection``): RQ cannot take redis-py's ``RedisCluster`` (its workers and scheduler read
``connection.connection_pool``, which ``RedisCluster`` lacks: ``rq/worker/base.py``
``_set_connection`` and ``rq/connections.py`` ``parse_connection``), and for keys of one slot
``RedisCluster`` would send every command to that same node anyway. Each new connection asks the
startup nodes which master owns the slot (``CLUSTER SLOTS``), and a ``MOVED`` answer (a failover or
resharding moved the slot) drops the connection, so the next one follows the slot.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from redis import ConnectionPool, Redis
from redis.connection import Connection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisError
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


CLUSTER_SCHEMES = ("redis+cluster",)


def cluster_nodes(url: str) -> tuple[tuple[str, int], ...]:
    """The startup nodes of ``redis+cluster://host:port[,host:port...]``; ValueError if malformed."""
    parsed = urlparse(url)
    if parsed.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a cluster URL: {parsed.scheme}://")
    nodes = []
    for item in filter(None, parsed.netloc.rpartition("@")[2].split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"each cluster node must be host:port, got {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes or parsed.path.strip("/") not in ("", "0"):
        raise ValueError("expected redis+cluster://host:port[,host:port...] (a cluster has database 0 only)")
    return tuple(nodes)


class SlotOwnerConnection(Connection):
    """A connection to the master that owns ``hash_tag``'s slot, looked up at every (re)connect."""

    def __init__(self, *, startup_nodes: tuple[tuple[str, int], ...] = (), hash_tag: str = "", **kwargs) -> None:
        self.startup_nodes, self.hash_tag = tuple(startup_nodes), hash_tag
        super().__init__(**kwargs)

    def _connect(self):
        self.host, self.port = self.slot_owner()
        return super()._connect()

    def slot_owner(self) -> tuple[str, int]:
        """Ask the startup nodes, in turn, which master serves the slot (``CLUSTER SLOTS``)."""
        slot = key_slot(f"{{{self.hash_tag}}}".encode())
        errors = []
        for host, port in self.startup_nodes:
            try:
                with Redis(host=host, port=port, username=self.username, password=self.password,
                           socket_timeout=self.socket_connect_timeout or 3.0,
                           socket_connect_timeout=self.socket_connect_timeout or 3.0) as probe:
                    for start, end, master, *_ in probe.execute_command("CLUSTER SLOTS"):
                        if int(start) <= slot <= int(end):
                            owner = master[0].decode() if isinstance(master[0], bytes) else master[0]
                            return owner or host, int(master[1])
            except RedisError as exc:
                errors.append(f"{host}:{port} {type(exc).__name__}")
        raise RedisConnectionError(f"no cluster node names the master of slot {slot}: {', '.join(errors) or 'none'}")

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except MovedError:
            self.disconnect()   # the slot moved: the next connection looks it up again
            raise RedisConnectionError("the cluster moved hubhook's slot to another node; retry") from None


def connect(url: str, **options) -> Redis:
    """A client for ``url``: one Redis, the current master of a Sentinel deployment, or of a cluster's slot."""
    scheme = urlparse(url).scheme
    if scheme in CLUSTER_SCHEMES:
        from webhook_service import keys

        if keys.HASH_TAG is None:
            raise ValueError("a Redis Cluster needs RQ_KEY_PREFIX with a hash tag, e.g. RQ_KEY_PREFIX='{hubhook}:rq'")
        parsed = urlparse(url)
        pool = ConnectionPool(connection_class=SlotOwnerConnection, startup_nodes=cluster_nodes(url),
                              hash_tag=keys.HASH_TAG, username=unquote(parsed.username) if parsed.username else None,
                              password=unquote(parsed.password) if parsed.password else None, **options)
        return Redis(connection_pool=pool)
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
