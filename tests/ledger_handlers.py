"""Handlers for the process-level tests: each call is appended to a Redis list, the ledger."""
import json
import os
import time

from redis import Redis

from webhook_service import Router, keys
from webhook_service.connection import connect

#: Under hubhook's prefix, so on a Redis Cluster the test's keys share hubhook's slot.
TEST = f"{keys.PREFIX}:test:"

router = Router()


def _redis() -> Redis:
    return connect(os.environ["REDIS_URL"])


@router.on("contact.*", properties=["email"], associations=["companies"])
def record(event):
    redis = _redis()
    email = (event.record or {}).get("properties", {}).get("email")
    if email == "slow@example.com" and redis.incr(TEST + "slow-started") == 1:
        redis.rpush(TEST + "started", event.object_id)
        time.sleep(60)  # the test kills the worker here
    redis.rpush(TEST + "ledger", json.dumps({"id": event.object_id, "type": event.subscription_type,
                                           "companies": event.associations["companies"]}))
