"""Handlers for the operations tests: one that succeeds (and prints), one that always fails."""
import os

from webhook_service import Router

router = Router()


@router.on("contact.creation", properties=["email"])
def welcome(event):
    print(f"[welcome] contact {event.object_id} {event.properties.get('email')}", flush=True)


@router.on("deal.creation")
def broken(event):
    # a careless handler that puts the token in its error: the log line must still not show it
    raise RuntimeError(f"cannot sync deal {event.object_id} with token {os.environ.get('HUBSPOT_ACCESS_TOKEN')}")
