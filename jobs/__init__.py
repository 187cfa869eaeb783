"""hubhook's background side: RQ jobs that enrich deliveries and call handlers, the poller, the API client."""
