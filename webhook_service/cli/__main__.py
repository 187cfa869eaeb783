"""``python -m webhook_service.cli.processes``: the same as the ``hubhook`` command."""
from webhook_service.cli.processes import main

main()
