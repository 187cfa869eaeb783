"""Example handlers, as a hubhook user writes them (used by ``make demo``).

Run them with ``HUBHOOK_HANDLERS=examples.demo_handlers:router hubhook worker``.
"""
from webhook_service import Router

router = Router()


@router.on("contact.creation", properties=["email", "firstname"], associations=["companies"])
def welcome(event):
    """A new contact: greet them, knowing their company."""
    props = event.record["properties"] if event.record else {}
    print(f"[welcome] contact {event.object_id} <{props.get('email')}> created; "
          f"companies {event.associations['companies']}", flush=True)


@router.on("deal.propertyChange", property="dealstage", properties=["dealname", "dealstage", "amount"],
           associations=["contacts", "companies"])
def stage_changed(event):
    """A deal moved stage: the full deal and who is on it, in one call of your function."""
    deal = event.record["properties"]
    print(f"[stage_changed] deal {event.object_id} {deal['dealname']!r} is now {deal['dealstage']} "
          f"(amount {deal.get('amount')}); contacts {event.associations['contacts']}, "
          f"companies {event.associations['companies']}", flush=True)


@router.on("deal.deletion")
def deal_deleted(event):
    print(f"[deal_deleted] deal {event.object_id} deleted (record is {event.record})", flush=True)
