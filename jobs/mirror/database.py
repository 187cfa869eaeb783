"""The mirror's connection to PostgreSQL: one per process, reopened when PostgreSQL comes back.

A worker runs one job at a time (RQ's SimpleWorker), so one connection serves it; a pool would only
make a job wait for a connection while PostgreSQL is down, where failing at once lets the job hand
the mirror's objects to their retries. The URL may hold a password: errors name the host and
database only (``describe``), never the URL.
"""
from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import psycopg

from webhook_service.errors import MirrorUnavailable

__all__ = ["CONNECT_TIMEOUT", "Database", "MirrorUnavailable", "connect", "describe"]

log = logging.getLogger("hubhook.mirror")
CONNECT_TIMEOUT = 3


def describe(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL: what error messages may show."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A new connection, or MirrorUnavailable saying where it could not connect (no password)."""
    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=autocommit,
                               application_name="hubhook-mirror")
    except psycopg.Error as exc:
        raise MirrorUnavailable(f"cannot connect to PostgreSQL at {describe(url)} ({type(exc).__name__}); "
                                f"check that it runs and HUBHOOK_MIRROR_URL is right") from None


class Database:
    """The process's connection, opened on first use and after any failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def connection(self) -> psycopg.Connection:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = connect(self.url, autocommit=True)  # transactions are explicit
            return self._conn

    def reset(self) -> None:
        """Drop the connection after a failure: the next use opens a fresh one."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except psycopg.Error:
                    pass
            self._conn = None

    def close(self) -> None:
        self.reset()
