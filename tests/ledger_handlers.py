"""Handlers for the process-level tests: each call is appended to a Redis list, the ledger."""
import json
import os
import time

from redis import Redis

from webhook_service import Router

router = Router()


def _redis() -> Redis:
    return Redis.from_url(os.environ["REDIS_URL"])


@router.on("contact.*", properties=["email"], associations=["companies"])
def record(event):
    redis = _redis()
    email = (event.record or {}).get("properties", {}).get("email")
    if email == "slow@example.com" and redis.incr("test:slow-started") == 1:
        redis.rpush("test:started", event.object_id)
        time.sleep(60)  # the test kills the worker here
    redis.rpush("test:ledger", json.dumps({"id": event.object_id, "type": event.subscription_type,
                                           "companies": event.associations["companies"]}))
