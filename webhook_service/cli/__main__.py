"""``python -m webhook_service.cli``: the same as the ``hubhook`` command."""
from webhook_service.cli.group import main

main()
