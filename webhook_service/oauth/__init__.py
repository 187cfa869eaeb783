"""OAuth for a public app installed in many portals.

- ``flow``: the authorize URL, the install state and the code-for-token exchange.
- ``token_store``: per-portal tokens in Redis, encrypted, refreshed before they expire by one process.
- ``routes``: ``/oauth/install`` and ``/oauth/callback``, registered when ``HUBSPOT_CLIENT_ID`` is set.
"""
