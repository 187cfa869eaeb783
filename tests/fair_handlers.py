"""Handlers for the fair-share tests and bench: each call is appended to a Redis list (portal:object),
after 20 ms of work, as a handler that writes each object somewhere would take."""
import os
import time

from redis import Redis

from webhook_service import Router

router = Router()
CALLS = "test:fair-calls"
_redis: list[Redis] = []


@router.on("contact.*")
def record(event):
    if not _redis:
        _redis.append(Redis.from_url(os.environ["REDIS_URL"]))
    time.sleep(float(os.environ.get("FAIR_HANDLER_SECONDS", "0.02")))
    _redis[0].rpush(CALLS, f"{event.portal_id}:{event.object_id}")
