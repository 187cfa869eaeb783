"""A careless handler: its error quotes the access token and carries terminal escape sequences."""
from webhook_service import Router

from .conftest import TOKEN

#: ESC[2J clears the screen, ESC]0;...BEL retitles the terminal window
ESCAPES = "\x1b[2J\x1b]0;owned\x07"

router = Router()


@router.on("deal.creation")
def leaky(event):
    raise RuntimeError(f"cannot sync deal {event.object_id} with token {TOKEN} {ESCAPES}")


#: For an OAuth app: the error quotes the token of the event's own portal, which only the worker holds
oauth_router = Router()


@oauth_router.on("contact.creation")
def leaky_oauth(event):
    token = event.hubspot.client.auth.token_for(event.portal_id)
    raise RuntimeError(f"portal {event.portal_id} refused token {token}")
