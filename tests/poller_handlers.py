"""Handlers for the poller's process tests: tickets have no webhooks here, so `hubhook poll` walks them."""
from webhook_service import Router

router = Router()


@router.on("ticket.*")
def ticket_changed(event):
    """The poller only needs to know the type; the tests read what it enqueued."""
