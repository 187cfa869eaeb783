"""Run the fake HubSpot from a shell, optionally with a small demo CRM, for ``make demo``.

    python -m webhook_service.testing.fake_hubspot --port 8900 --seed-demo

Point hubhook at it with ``HUBSPOT_API_BASE_URL=http://127.0.0.1:8900`` and any bearer token.
"""
from __future__ import annotations

import argparse
import threading

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
    args = parser.parse_args(argv)
    fake = FakeHubSpot(host=args.host, port=args.port, latency=args.latency,
                       search_lag=args.search_lag).start()
    if args.seed_demo:
        seeded = seed_demo(fake)
        summary = ", ".join(f"{kind} {' '.join(ids)}" for kind, ids in seeded.items())
        print(f"demo data: {summary}", flush=True)
    print(f"fake HubSpot serving on {fake.url} (any bearer token accepted); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
