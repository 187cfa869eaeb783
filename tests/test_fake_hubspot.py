"""The fake HubSpot answers in HubSpot's shapes, over real HTTP, with HubSpot's hard parts.

hubhook's client, worker and poller are tested against this fake, so each test here pins one
behaviour of HubSpot (FACTS.md 3-6) that those tests rely on.
"""
from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from webhook_service.testing.fake_demo import seed_demo
from webhook_service.testing.fake_hubspot import FakeHubSpot

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CLIENT = {"client_id": "app", "client_secret": "shh"}


@pytest.fixture
def fake():
    with FakeHubSpot() as server:
        yield server


def api(server: FakeHubSpot, token: str = "pat-na1-test") -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.base = server.url   # type: ignore[attr-defined]
    return session


def search(session, obj="contacts", **body):
    return session.post(f"{session.base}/crm/v3/objects/{obj}/search", json=body)


def test_single_get_in_both_path_spellings_has_hubspot_shape(fake):
    # Given a contact and a custom-object record
    contact = fake.add("contacts", properties={"email": "ada@example.com", "firstname": "Ada", "age": 36})
    fake.add("2-123", 77, {"size": "L"})
    s = api(fake)
    # When it is read through the legacy and the dated path, by name and by type id
    legacy = s.get(f"{fake.url}/crm/v3/objects/contacts/{contact['id']}", params={"properties": "email,age"})
    dated = s.get(f"{fake.url}/crm/objects/2026-09/0-1/{contact['id']}").json()
    # Then both carry the asked (or default) properties plus the defaults, all strings, ISO dates
    body = legacy.json()
    assert legacy.status_code == 200 and list(body) == ["id", "properties", "createdAt", "updatedAt", "archived"]
    assert set(body["properties"]) == {"email", "age", "createdate", "hs_object_id", "lastmodifieddate"}
    assert body["properties"]["age"] == "36" and ISO.match(body["updatedAt"])
    assert dated["properties"]["firstname"] == "Ada" and dated["id"] == contact["id"]
    assert s.get(f"{fake.url}/crm/v3/objects/2-123/77").json()["properties"]["hs_lastmodifieddate"]
    # And unknown ids, types and routes answer HubSpot-style JSON errors
    missing = s.get(f"{fake.url}/crm/v3/objects/contacts/999")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert missing.json()["context"] == {"id": ["999"]} and missing.json()["correlationId"]
    assert s.get(f"{fake.url}/crm/v3/objects/widgets/1").status_code == 400
    assert s.get(f"{fake.url}/nowhere").json()["status"] == "error"


def test_list_pages_with_an_id_cursor(fake):
    ids = [fake.add("deals", properties={"dealname": n})["id"] for n in "abc"]
    s = api(fake)
    first = s.get(f"{fake.url}/crm/v3/objects/deals", params={"limit": 2}).json()
    assert [r["id"] for r in first["results"]] == ids[:2] and first["paging"]["next"]["after"] == ids[2]
    last = s.get(first["paging"]["next"]["link"]).json()
    assert [r["id"] for r in last["results"]] == ids[2:] and "paging" not in last


def test_batch_read_reports_missing_ids_as_207_and_refuses_over_100(fake):
    known = fake.add("contacts")["id"]
    s = api(fake)
    url = f"{fake.url}/crm/v3/objects/contacts/batch/read"
    partial = s.post(url, json={"properties": ["email"], "inputs": [{"id": known}, {"id": "5"}, {"id": "6"}]})
    body = partial.json()
    assert partial.status_code == 207 and body["status"] == "COMPLETE" and body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"] == {"ids": ["5", "6"]}
    assert "CONTACT objects" in body["errors"][0]["message"] and [r["id"] for r in body["results"]] == [known]
    assert s.post(url, json={"inputs": [{"id": known}]}).status_code == 200
    too_many = s.post(url, json={"inputs": [{"id": str(i)} for i in range(101)]})
    assert too_many.status_code == 400 and too_many.json()["category"] == "VALIDATION_ERROR"


def test_archived_records_need_archived_true_and_leave_search(fake):
    gone = fake.add("companies", properties={"name": "Old"})["id"]
    fake.archive("companies", gone)
    s = api(fake)
    assert s.get(f"{fake.url}/crm/v3/objects/companies/{gone}").status_code == 404
    archived = s.get(f"{fake.url}/crm/v3/objects/companies/{gone}", params={"archived": "true"}).json()
    assert archived["archived"] is True and ISO.match(archived["archivedAt"])
    assert search(s, "companies").json()["total"] == 0


def test_merge_makes_a_new_record_that_both_old_ids_resolve_to(fake):
    # Given two contacts, one associated with a company, merged the 2024 way
    a, b = (fake.add("contacts", properties={"email": e})["id"] for e in ("a@x.io", "b@x.io"))
    company = fake.add("companies")["id"]
    fake.associate("contacts", b, "companies", company)
    merged = fake.merge("contacts", a, b)
    s = api(fake)
    # When either old id is read, alone or together in a batch
    single = s.get(f"{fake.url}/crm/v3/objects/contacts/{a}", params={"properties": "email,hs_merged_object_ids"})
    batch = s.post(f"{fake.url}/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": a}, {"id": b}]})
    # Then the new record answers (once), primary's values win, and the association moved to it
    assert merged not in (a, b) and single.json()["id"] == merged
    assert single.json()["properties"]["hs_merged_object_ids"] == f"{a};{b}"
    assert single.json()["properties"]["email"] == "a@x.io"
    assert batch.status_code == 200 and [r["id"] for r in batch.json()["results"]] == [merged]
    links = s.post(f"{fake.url}/crm/v4/associations/companies/contacts/batch/read", json={"inputs": [{"id": company}]})
    assert links.json()["results"][0]["to"][0]["toObjectId"] == int(merged)


def test_associations_batch_read_shapes_pages_and_207(fake):
    company = fake.add("companies")["id"]
    contacts = [fake.add("contacts")["id"] for _ in range(501)]
    for contact in contacts:
        fake.associate("contacts", contact, "companies", company)
    s = api(fake)
    forward = s.post(f"{fake.url}/crm/v4/associations/contacts/companies/batch/read",
                     json={"inputs": [{"id": contacts[0]}, {"id": "424242"}]})
    assert forward.status_code == 207
    assert forward.json()["results"][0] == {"from": {"id": contacts[0]}, "to": [{"toObjectId": int(company), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}]}]}
    error = forward.json()["errors"][0]
    assert error["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND" and error["context"] == {"fromObjectId": ["424242"]}
    url = f"{fake.url}/crm/associations/2026-09/0-2/0-1/batch/read"
    page = s.post(url, json={"inputs": [{"id": company}]}).json()["results"][0]
    assert len(page["to"]) == 500 and page["to"][0]["associationTypes"][0]["typeId"] == 280
    rest = s.post(url, json={"inputs": [{"id": company, "after": page["paging"]["next"]["after"]}]}).json()
    assert [t["toObjectId"] for t in rest["results"][0]["to"]] == [int(contacts[-1])]
    assert s.post(url, json={"inputs": [{"id": "1"}] * 1001}).status_code == 400


def test_search_filters_sorts_ties_by_id_and_pages(fake):
    for amount, stage in ((50, "won"), (10, "lost"), (50, "won"), (30, None)):
        fake.add("deals", properties={"amount": amount, "dealstage": stage})
    s = api(fake)
    found = search(s, "deals", limit=2, properties=["amount"], sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
                   filterGroups=[{"filters": [{"propertyName": "amount", "operator": "GTE", "value": "20"}]},
                                 {"filters": [{"propertyName": "dealstage", "operator": "IN", "values": ["lost"]}]}]).json()
    assert found["total"] == 4 and [r["properties"]["amount"] for r in found["results"]] == ["50", "50"]
    assert int(found["results"][0]["id"]) < int(found["results"][1]["id"]) and found["paging"]["next"]["after"] == "2"
    last = search(s, "deals", after="2", limit=2, filterGroups=[{"filters": [
        {"propertyName": "dealstage", "operator": "NOT_HAS_PROPERTY"}]}]).json()
    assert last == {"total": 1, "results": []}


def test_search_watermark_accepts_ms_or_iso_and_caps_paging_at_10000(fake):
    # Given 10,050 contacts modified one millisecond apart
    for i in range(10_050):
        fake.add("contacts", modified_at_ms=1_700_000_000_000 + i)
    s = api(fake)
    sort = [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    since = lambda value: [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": value}]}]
    # When searching from a watermark given as ms and as ISO
    by_ms = search(s, filterGroups=since("1700000010000"), sorts=sort, limit=200).json()
    by_iso = search(s, filterGroups=since("2023-11-14T22:13:30.000Z"), sorts=sort, limit=200).json()
    assert by_ms["total"] == by_iso["total"] == 50 and by_ms["results"] == by_iso["results"]
    # Then paging stops at 10,000 although total says more, and going past it is HubSpot's 400
    near_end = search(s, sorts=sort, limit=200, after="9800").json()
    assert near_end["total"] == 10_050 and near_end["paging"]["next"]["after"] == "10000"
    beyond = search(s, sorts=sort, limit=200, after="10000")
    assert beyond.status_code == 400 and beyond.json()["message"] == "There was a problem with the request."
    assert search(s, limit=201).status_code == 400


def test_search_lags_behind_writes_and_shows_the_previous_version_meanwhile():
    with FakeHubSpot(search_lag=0.3) as fake:
        old = fake.add("contacts", properties={"firstname": "Old"})["id"]
        time.sleep(0.35)
        fake.update("contacts", old, {"firstname": "New"})
        fake.add("contacts", properties={"firstname": "Brand"})
        s = api(fake)
        during = search(s).json()
        assert [r["properties"]["firstname"] for r in during["results"]] == ["Old"]
        time.sleep(0.35)
        assert [r["properties"]["firstname"] for r in search(s).json()["results"]] == ["New", "Brand"]


def test_search_secondly_limit_answers_429_without_rate_limit_headers(fake):
    s = api(fake)
    answers = [search(s) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json()["policyName"] == "SECONDLY" and answers[-1].json()["errorType"] == "RATE_LIMIT"
    assert answers[-1].json()["message"] == "You have reached your secondly limit."
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for a in answers for h in a.headers)


def test_burst_limit_rolls_over_ten_seconds_and_headers_count_down():
    with FakeHubSpot(burst_limit=(3, 10.0)) as fake:
        s = api(fake)
        answers = [s.get(f"{fake.url}/crm/v3/objects/deals/1") for _ in range(4)]
        assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
        assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert answers[-1].status_code == 429 and answers[-1].json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert [c.status for c in fake.calls] == [404, 404, 404, 429]


def test_fault_injection_fails_and_hangs_only_matching_requests(fake):
    contact = fake.add("contacts")["id"]
    # Given two 502s scripted for batch reads only
    fake.fail_next(2, 502, path_contains="/batch/read")
    s = api(fake)
    url = f"{fake.url}/crm/v3/objects/contacts/{contact}"
    batch = lambda: s.post(f"{fake.url}/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": contact}]})
    # Then a single GET passes, the next two batch reads fail with a JSON body, the third succeeds
    assert s.get(url).status_code == 200
    assert [batch().status_code for _ in range(3)] == [502, 502, 200]
    # And a scripted 429 carries the test's own body and headers
    fake.fail_next(1, 429, body={"status": "error", "policyName": "DAILY"}, headers={"Retry-After": "3"})
    limited = s.get(url)
    assert limited.status_code == 429 and limited.json()["policyName"] == "DAILY"
    assert limited.headers["Retry-After"] == "3"
    # And a hang outlasts a client timeout once, then requests answer promptly again
    fake.hang_next(1, 0.5, path_contains="/contacts/")
    with pytest.raises(requests.ReadTimeout):
        s.get(url, timeout=0.1)
    assert s.get(url, timeout=1).status_code == 200
    assert fake.count(path_contains="/batch/read", method="post") == 3


def test_latency_applies_to_concurrent_requests_in_parallel():
    with FakeHubSpot(latency=0.2) as fake:
        started = time.monotonic()
        threads = [threading.Thread(target=requests.get, args=(f"{fake.url}/crm/v3/objects/deals/1",),
                                    kwargs={"headers": {"Authorization": "Bearer t"}}) for _ in range(5)]
        [t.start() for t in threads], [t.join() for t in threads]
        assert time.monotonic() - started < 0.6 and fake.count() == 5


def test_oauth_exchange_refresh_expiry_portals_and_no_token_in_calls():
    with FakeHubSpot(tokens={"pat-static"}) as fake:
        # Given a record of portal 42 and an install code for it
        record = fake.add("deals", portal_id=42)["id"]
        code = fake.issue_code(42)
        # When the code is exchanged, then refreshed
        grant = requests.post(f"{fake.url}/oauth/v1/token", data={"grant_type": "authorization_code", "code": code, **CLIENT}).json()
        assert grant["hub_id"] == 42 and grant["expires_in"] == 1800 and grant["token_type"] == "bearer"
        fresh = requests.post(f"{fake.url}/oauth/2026-03/token",
                              data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"], **CLIENT}).json()
        # Then both access tokens read portal 42's data; the static token sees another portal
        for token in (grant["access_token"], fresh["access_token"]):
            assert api(fake, token).get(f"{fake.url}/crm/v3/objects/deals/{record}").status_code == 200
        assert api(fake, "pat-static").get(f"{fake.url}/crm/v3/objects/deals/{record}").status_code == 404
        assert api(fake, "wrong").get(f"{fake.url}/crm/v3/objects/deals/{record}").json()["category"] == "INVALID_AUTHENTICATION"
        assert fake.calls[2].portal == 42 and fake.calls[4].portal is None
        # And spent codes, bad refresh tokens and expired access tokens are refused like HubSpot does
        reuse = requests.post(f"{fake.url}/oauth/v3/token", data={"grant_type": "authorization_code", "code": code, **CLIENT})
        bad = requests.post(f"{fake.url}/oauth/v1/token", data={"grant_type": "refresh_token", "refresh_token": "x", **CLIENT})
        assert reuse.status_code == bad.status_code == 400 and bad.json()["status"] == "BAD_REFRESH_TOKEN"
        fake.token_lifetime = 0
        short = requests.post(f"{fake.url}/oauth/v1/token",
                              data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"], **CLIENT}).json()
        expired = api(fake, short["access_token"]).get(f"{fake.url}/crm/v3/objects/deals/{record}")
        assert expired.status_code == 401 and expired.json()["category"] == "EXPIRED_AUTHENTICATION"
        secrets = [code, grant["access_token"], grant["refresh_token"], fresh["access_token"], "pat-static", "shh"]
        assert not any(secret in repr(fake.calls) for secret in secrets)


def test_writes_from_the_api_are_visible_with_integration_history(fake):
    contact = fake.add("contacts", properties={"lastname": "Old"})["id"]
    s = api(fake)
    created = s.post(f"{fake.url}/crm/objects/2026-09/deals", json={"properties": {"dealname": "D", "amount": 5},
                     "associations": [{"to": {"id": contact}, "types": [{"associationTypeId": 3}]}]})
    assert created.status_code == 201 and created.json()["properties"]["amount"] == "5"
    s.patch(f"{fake.url}/crm/v3/objects/contacts/{contact}", json={"properties": {"lastname": "New"}})
    history = s.get(f"{fake.url}/crm/v3/objects/contacts/{contact}", params={"propertiesWithHistory": "lastname"}).json()
    assert [(h["value"], h["sourceType"]) for h in history["propertiesWithHistory"]["lastname"]] == [
        ("New", "INTEGRATION"), ("Old", "CRM_UI")]
    batch = s.post(f"{fake.url}/crm/v3/objects/contacts/batch/update",
                   json={"inputs": [{"id": contact, "properties": {"lastname": "B"}}, {"id": "9", "properties": {}}]})
    assert batch.status_code == 207 and batch.json()["results"][0]["properties"]["lastname"] == "B"
    company = fake.add("companies")["id"]
    linked = s.put(f"{fake.url}/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}").json()
    assert [r["associationSpec"]["associationTypeId"] for r in linked["results"]] == [279, 280]
    deals = s.post(f"{fake.url}/crm/v4/associations/contacts/deals/batch/read", json={"inputs": [{"id": contact}]}).json()
    assert deals["results"][0]["to"][0]["toObjectId"] == int(created.json()["id"])


def test_threads_and_demo_seed(fake):
    fake.add_thread(5, status="CLOSED")
    s = api(fake)
    assert s.get(f"{fake.url}/conversations/conversations/2026-09/threads/5").json()["status"] == "CLOSED"
    assert s.get(f"{fake.url}/conversations/v3/conversations/threads/6").status_code == 404
    seeded = seed_demo(fake)
    assert [len(ids) for ids in seeded.values()] == [3, 5, 3]
    deal = s.post(f"{fake.url}/crm/v4/associations/deals/companies/batch/read", json={"inputs": [{"id": seeded["deals"][0]}]})
    assert deal.status_code == 200
