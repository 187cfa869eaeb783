"""Handlers for the quota and OAuth process tests: each call is appended to a Redis list, the ledger."""
import json
import os

from webhook_service import Router, keys
from webhook_service.connection import connect

router = Router()
LEDGER = f"{keys.PREFIX}:test:quota-ledger"  # hubhook's prefix: its slot on a Redis Cluster


@router.on("contact.*", properties=["email"], associations=["companies"])
def record(event):
    email = (event.record or {}).get("properties", {}).get("email")
    connect(os.environ["REDIS_URL"]).rpush(LEDGER, json.dumps(
        {"id": event.object_id, "portal": event.portal_id, "email": email,
         "companies": list(event.associations["companies"])}))
