"""The Webhooks Journal reader (``hubhook journal``).

- ``format``: every assumption about the journal's wire format, and the mapping to webhook-shaped events.
- ``client``: the client-credentials token and the journal's HTTP calls.
- ``reader``: the process: leadership, offset, enqueue, lost offsets, status.
- ``subscriptions``: the journal subscriptions the registered handlers need.
"""
