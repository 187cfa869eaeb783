"""What the mirror tests share: delivering events, running a worker, reading the mirror's rows."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from webhook_service import Router
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import enqueue_delivery

from .conftest import drain


def deliver(config: Config, redis, events: list[dict]) -> None:
    enqueue_delivery(redis, build_queue(config, redis), events)


def process(config: Config, redis, events: list[dict], router: Router | None = None) -> Router:
    """Deliver ``events`` and run a real RQ worker until the queue is empty; returns the router it ran."""
    router = router if router is not None else Router()
    deliver(config, redis, events)
    drain(config, router)
    return router


def query(config: Config, text: str, params: tuple = ()) -> list[dict]:
    """Rows of a query in the test's schema (``{s}`` stands for it)."""
    assert config.mirror_url
    with psycopg.connect(config.mirror_url, row_factory=dict_row, autocommit=True) as conn:
        return conn.execute(text.replace("{s}", f'"{config.mirror_schema}"'), params).fetchall()  # type: ignore


def row(config: Config, table: str, object_id: int | str, portal_id: int = 62515) -> dict | None:
    found = query(config, f"SELECT * FROM {{s}}.{table} WHERE portal_id = %s AND object_id = %s",
                  (portal_id, int(object_id)))
    return found[0] if found else None


def links(config: Config, from_type: str, from_id: int | str, portal_id: int = 62515) -> set[tuple]:
    return {(r["to_type"], r["to_id"], r["type_id"], r["label"]) for r in query(
        config, "SELECT * FROM {s}.associations WHERE portal_id = %s AND from_type = %s AND from_id = %s",
        (portal_id, from_type, int(from_id)))}
