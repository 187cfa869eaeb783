"""``python -m webhook_service.testing.fake_hubspot [--port N] [--seed-demo]``: the fake HubSpot in a shell."""
from webhook_service.testing.fake_hubspot.demo import main

main()
