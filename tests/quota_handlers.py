"""Handlers for the quota and OAuth process tests: each call is appended to a Redis list, the ledger."""
import json
import os

from redis import Redis

from webhook_service import Router

router = Router()
LEDGER = "test:quota-ledger"


@router.on("contact.*", properties=["email"], associations=["companies"])
def record(event):
    email = (event.record or {}).get("properties", {}).get("email")
    Redis.from_url(os.environ["REDIS_URL"]).rpush(LEDGER, json.dumps(
        {"id": event.object_id, "portal": event.portal_id, "email": email,
         "companies": list(event.associations["companies"])}))
