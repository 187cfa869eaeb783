"""Run the fake HubSpot from a shell, optionally with a small demo CRM, for ``make demo``.

    python -m webhook_service.testing.fake_hubspot --port 8900 --seed-demo

Point hubhook at it with ``HUBSPOT_API_BASE_URL=http://127.0.0.1:8900`` and any bearer token. With
``--webhook-url URL`` every later write (the demo data is not one) is sent to URL as a signed webhook,
with the client secret read from ``HUBSPOT_CLIENT_SECRET`` (never from the command line, where ``ps``
would show it).
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading

from webhook_service.config import Config
from webhook_service.errors import HubhookError
from webhook_service.testing.fake_hubspot.server import FakeHubSpot
from webhook_service.testing.fake_hubspot.shapes import iso, now_ms

_COMPANIES = (("Acme Corp", "acme.example"), ("Globex", "globex.example"), ("Initech", "initech.example"))
_CONTACTS = (("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing"), ("Edsger", "Dijkstra"),
             ("Barbara", "Liskov"))
_DEALS = (("Acme renewal", 12000, "appointmentscheduled"), ("Globex pilot", 4500, "qualifiedtobuy"),
          ("Initech expansion", 30000, "contractsent"))
_MONTH_MS = 30 * 24 * 3600 * 1000


def seed_demo(fake: FakeHubSpot) -> dict[str, list[str]]:
    """Five contacts, three companies and three deals, associated, so a demo has something to fetch.

    Returns the new ids by API type name.
    """
    companies = [fake.add("companies", properties={"name": name, "domain": domain})["id"]
                 for name, domain in _COMPANIES]
    contacts = []
    for i, (first, last) in enumerate(_CONTACTS):
        domain = _COMPANIES[i % len(_COMPANIES)][1]
        contacts.append(fake.add("contacts", properties={"firstname": first, "lastname": last,
                                                         "email": f"{first.lower()}@{domain}"})["id"])
        fake.associate("contacts", contacts[-1], "companies", companies[i % len(companies)])
    deals = []
    for i, (name, amount, stage) in enumerate(_DEALS):
        deals.append(fake.add("deals", properties={"dealname": name, "amount": amount, "dealstage": stage,
                                                   "pipeline": "default",
                                                   "closedate": iso(now_ms() + _MONTH_MS)})["id"])
        fake.associate("deals", deals[-1], "companies", companies[i])
        fake.associate("deals", deals[-1], "contacts", contacts[i])
    return {"companies": companies, "contacts": contacts, "deals": deals}


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C; prints the URL first so scripts can wait for it."""
    parser = argparse.ArgumentParser(description="Serve a fake HubSpot API until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed-demo", action="store_true", help="add demo contacts, companies and deals")
    parser.add_argument("--search-lag", type=float, default=0.0,
                        help="seconds before a write shows in search")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--webhook-url", help="send the webhooks of every write to this URL, signed with "
                                              "$HUBSPOT_CLIENT_SECRET")
    parser.add_argument("--webhook-subscriptions", metavar="TYPES",
                        help="comma-separated subscription types to send (default: all), e.g. "
                             "deal.creation,contact.propertyChange")
    parser.add_argument("--app-id", type=int, default=54321, help="appId of the webhooks, and sourceId of API writes")
    parser.add_argument("--portal-id", type=int, default=62515, help="portalId of the webhooks")
    args = parser.parse_args(argv)
    try:
        secrets = Config.from_env().client_secrets   # HUBSPOT_CLIENT_SECRET, the receiver's (first) secret
    except HubhookError as exc:
        sys.exit(f"fake HubSpot: {exc}")
    secret = secrets[0] if secrets else ""
    if args.webhook_url and not secret:
        sys.exit("fake HubSpot: --webhook-url needs HUBSPOT_CLIENT_SECRET set to the client secret your "
                 "receiver verifies with (export it, then run this again)")
    fake = FakeHubSpot(host=args.host, port=args.port, latency=args.latency,
                       search_lag=args.search_lag, app_id=args.app_id).start()
    if args.seed_demo:
        seeded = seed_demo(fake)
        summary = ", ".join(f"{kind} {' '.join(ids)}" for kind, ids in seeded.items())
        print(f"demo data: {summary}", flush=True)
    if args.webhook_url:
        logging.basicConfig(level=logging.INFO, format="%(message)s")   # one line per failed delivery
        types = [t.strip() for t in args.webhook_subscriptions.split(",") if t.strip()] \
            if args.webhook_subscriptions else None
        fake.emit_webhooks_to(args.webhook_url, secret, portal_id=args.portal_id, subscriptions=types)
        print(f"webhooks of every write go to {args.webhook_url} (app {args.app_id}, portal {args.portal_id})",
              flush=True)
    print(f"fake HubSpot serving on {fake.url} (any bearer token accepted); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
