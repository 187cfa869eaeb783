"""The fake HubSpot answers in HubSpot's shapes over real HTTP, hard parts included: hubhook's client,
worker and poller tests rely on each behaviour pinned here (CRM objects, search, associations, rate
limits, OAuth and error bodies)."""
from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from webhook_service.testing.fake_hubspot.auth import OAuthApp
from webhook_service.testing.fake_hubspot.demo import seed_demo
from webhook_service.testing.fake_hubspot.server import FakeHubSpot

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SORT_MODIFIED = [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]


class Api(requests.Session):
    """A client of the fake: bearer token set, paths relative to the fake's URL."""

    def __init__(self, fake: FakeHubSpot, token: str = "pat-na1-test") -> None:
        super().__init__()
        self.base, self.headers["Authorization"] = fake.url, f"Bearer {token}"

    def request(self, method, url, *args, **kwargs):
        return super().request(method, url if url.startswith("http") else self.base + url, *args, **kwargs)

    def search(self, obj: str = "contacts", **body) -> requests.Response:
        return self.post(f"/crm/v3/objects/{obj}/search", json=body)

    def batch(self, path: str, ids, **body) -> requests.Response:
        return self.post(path, json={"inputs": [{"id": str(i)} for i in ids], **body})

    def token(self, **form) -> requests.Response:
        form = {"client_id": "app", "client_secret": "shh", "redirect_uri": "https://app.example/cb", **form}
        return self.post("/oauth/v1/token", data=form)


@pytest.fixture
def fake():
    with FakeHubSpot() as server:
        yield server


def test_single_get_in_both_path_spellings_has_hubspot_shape(fake):
    # Given a contact, a custom-object record and a conversations thread
    contact = fake.add("contacts", properties={"email": "ada@x.io", "firstname": "Ada", "age": 36})["id"]
    fake.add("2-123", 77, {"size": "L"})
    fake.add_thread(5, status="CLOSED")
    api = Api(fake)
    # When read through the legacy and the dated path, by type name and by type id
    legacy = api.get(f"/crm/v3/objects/contacts/{contact}", params={"properties": "email,age"})
    dated = api.get(f"/crm/objects/2026-09/0-1/{contact}").json()
    # Then: the asked (or default) properties plus the defaults, all strings, ISO dates
    body = legacy.json()
    assert list(body) == ["id", "properties", "createdAt", "updatedAt", "archived"]
    assert set(body["properties"]) == {"email", "age", "createdate", "hs_object_id", "lastmodifieddate"}
    assert body["properties"]["age"] == "36" and ISO.match(body["updatedAt"])
    assert dated["properties"]["firstname"] == "Ada" and dated["id"] == contact
    assert ISO.match(api.get("/crm/v3/objects/2-123/77").json()["properties"]["hs_lastmodifieddate"])
    assert api.get("/conversations/conversations/2026-09/threads/5").json()["status"] == "CLOSED"
    # And unknown ids, types and routes get HubSpot-style JSON errors
    missing = api.get("/crm/v3/objects/contacts/999")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert missing.json()["context"] == {"id": ["999"]} and missing.json()["correlationId"]
    assert api.get("/crm/v3/objects/widgets/1").json()["category"] == "VALIDATION_ERROR"
    assert api.get("/nowhere").json()["status"] == "error"
    assert api.get("/conversations/v3/conversations/threads/6").status_code == 404


def test_list_pages_by_id_and_archived_records_need_archived_true(fake):
    # Given the demo CRM (three deals) and a fourth deal, archived
    ids, api = seed_demo(fake)["deals"], Api(fake)
    gone = fake.add("deals")["id"]
    fake.archive("deals", gone)
    # Then the list pages by id cursor and skips the archived deal
    first = api.get("/crm/v3/objects/deals", params={"limit": 2}).json()
    assert [r["id"] for r in first["results"]] == ids[:2] and first["paging"]["next"]["after"] == ids[2]
    last = api.get(first["paging"]["next"]["link"]).json()
    assert [r["id"] for r in last["results"]] == ids[2:] and "paging" not in last
    # And the archived deal is read only with archived=true, never searched
    assert api.get(f"/crm/v3/objects/deals/{gone}").status_code == 404
    archived = api.get(f"/crm/v3/objects/deals/{gone}", params={"archived": "true"}).json()
    assert archived["archived"] is True and ISO.match(archived["archivedAt"])
    assert api.search("deals").json()["total"] == 3


DEFAULTS = {
    "contacts": {"email", "firstname", "lastname", "createdate", "lastmodifieddate", "hs_object_id"},
    "companies": {"name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"},
    "deals": {"dealname", "amount", "dealstage", "pipeline", "closedate", "createdate", "hs_lastmodifieddate",
              "hs_object_id"},
    "tickets": {"subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority", "createdate",
                "hs_lastmodifieddate", "hs_object_id"},
}


@pytest.mark.parametrize("obj", sorted(DEFAULTS))
def test_reads_naming_no_properties_return_hubspots_defaults_null_when_unset(fake, obj):
    # Given one record of the type with a single non-default property set
    record, api = fake.add(obj, 1, {"hs_object_source": "API"})["id"], Api(fake)
    path, batch = f"/crm/v3/objects/{obj}", f"/crm/v3/objects/{obj}/batch/read"
    # When it is read without properties (and with an empty list) by each read endpoint
    reads = {"get": api.get(f"{path}/{record}").json(),
             "get with empty properties": api.get(f"{path}/{record}", params={"properties": ""}).json(),
             "list": api.get(path).json()["results"][0],
             "batch read without properties": api.batch(batch, [record]).json()["results"][0],
             "batch read with []": api.batch(batch, [record], properties=[]).json()["results"][0],
             "search": api.search(obj).json()["results"][0],
             "search with []": api.search(obj, properties=[]).json()["results"][0]}
    # Then each answers with exactly the type's default properties, null where the record has no value
    for how, read in reads.items():
        assert set(read["properties"]) == DEFAULTS[obj], how
        assert read["properties"]["hs_object_id"] == record, how
        assert ISO.match(read["properties"]["createdate"]), how
        unset = DEFAULTS[obj] - {"createdate", "hs_object_id", "lastmodifieddate", "hs_lastmodifieddate"}
        assert all(read["properties"][name] is None for name in unset), how


def test_reads_naming_properties_return_exactly_those_null_when_unset(fake):
    # Given a deal with a name only
    deal, api = fake.add("deals", 1, {"dealname": "Big", "description": "d"})["id"], Api(fake)
    wanted = ["dealname", "dealtype", "no_such_property"]
    # When it is read naming two properties, one of them unset, and one the portal lacks, by each endpoint
    reads = [api.get(f"/crm/v3/objects/deals/{deal}", params={"properties": ",".join(wanted)}).json(),
             api.get("/crm/v3/objects/deals", params={"properties": ",".join(wanted)}).json()["results"][0],
             api.batch("/crm/v3/objects/deals/batch/read", [deal], properties=wanted).json()["results"][0],
             api.search("deals", properties=wanted).json()["results"][0]]
    # Then each has those two (the unset one null) plus the three every read carries, no defaults, and
    # nothing for the property the portal lacks (HubSpot ignores it)
    for read in reads:
        assert read["properties"] == {"dealname": "Big", "dealtype": None, "hs_object_id": deal,
                                      "createdate": read["createdAt"],
                                      "hs_lastmodifieddate": read["updatedAt"]}


def test_batch_read_reports_missing_ids_as_207_and_refuses_over_100(fake):
    known, api, path = fake.add("contacts")["id"], Api(fake), "/crm/v3/objects/contacts/batch/read"
    partial = api.batch(path, [known, 5, 6], properties=["email"])
    body, error = partial.json(), partial.json()["errors"][0]
    assert partial.status_code == 207 and body["status"] == "COMPLETE" and body["numErrors"] == 1
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"] == {"ids": ["5", "6"]}
    assert "CONTACT objects" in error["message"] and [r["id"] for r in body["results"]] == [known]
    assert api.batch(path, [known]).status_code == 200
    assert api.batch(path, range(101)).json()["category"] == "VALIDATION_ERROR"


def test_merge_makes_a_new_record_that_both_old_ids_resolve_to(fake):
    # Given two contacts, the second associated with a company, merged the 2024 way
    a, b = (fake.add("contacts", properties={"email": email})["id"] for email in ("a@x.io", "b@x.io"))
    company = fake.add("companies")["id"]
    fake.associate("contacts", b, "companies", company)
    merged = fake.merge("contacts", a, b)
    api = Api(fake)
    # When either old id is read, alone or both in one batch
    single = api.get(f"/crm/v3/objects/contacts/{a}", params={"properties": "email,hs_merged_object_ids"})
    single = single.json()
    batch = api.batch("/crm/v3/objects/contacts/batch/read", [a, b])
    # Then the new record answers (once), the primary's values win, and the association moved to it
    assert merged not in (a, b) and single["id"] == merged and single["properties"]["email"] == "a@x.io"
    assert single["properties"]["hs_merged_object_ids"] == f"{a};{b}"
    assert batch.status_code == 200 and [r["id"] for r in batch.json()["results"]] == [merged]
    links = api.batch("/crm/v4/associations/companies/contacts/batch/read", [company]).json()
    assert links["results"][0]["to"][0]["toObjectId"] == int(merged)


def test_associations_batch_read_shapes_pages_and_207(fake):
    company, contacts = fake.add("companies")["id"], [fake.add("contacts")["id"] for _ in range(501)]
    for contact in contacts:
        fake.associate("contacts", contact, "companies", company)
    api = Api(fake)
    forward = api.batch("/crm/v4/associations/contacts/companies/batch/read", [contacts[0], 424242])
    types = [{"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}]
    assert forward.status_code == 207 and forward.json()["results"][0] == {
        "from": {"id": contacts[0]}, "to": [{"toObjectId": int(company), "associationTypes": types}]}
    error = forward.json()["errors"][0]
    assert error["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert error["context"] == {"fromObjectId": ["424242"]}
    path = "/crm/associations/2026-09/0-2/0-1/batch/read"
    page = api.batch(path, [company]).json()["results"][0]
    assert len(page["to"]) == 500 and page["to"][0]["associationTypes"][0]["typeId"] == 280
    rest = api.post(path, json={"inputs": [{"id": company, "after": page["paging"]["next"]["after"]}]}).json()
    assert [t["toObjectId"] for t in rest["results"][0]["to"]] == [int(contacts[-1])]
    assert api.batch(path, [1] * 1001).status_code == 400


def test_search_filters_sorts_ties_by_id_and_pages(fake):
    for amount, stage in ((50, "won"), (10, "lost"), (50, "won"), (30, None)):
        fake.add("deals", properties={"amount": amount, "dealstage": stage})
    api = Api(fake)
    groups = [{"filters": [{"propertyName": "amount", "operator": "GTE", "value": "20"}]},
              {"filters": [{"propertyName": "dealstage", "operator": "IN", "values": ["lost"]}]}]
    found = api.search("deals", limit=2, properties=["amount"], filterGroups=groups,
                       sorts=[{"propertyName": "amount", "direction": "DESCENDING"}]).json()
    assert found["total"] == 4 and [r["properties"]["amount"] for r in found["results"]] == ["50", "50"]
    assert int(found["results"][0]["id"]) < int(found["results"][1]["id"])
    assert found["paging"]["next"]["after"] == "2"
    unstaged = api.search("deals", after="2", limit=2, filterGroups=[{"filters": [
        {"propertyName": "dealstage", "operator": "NOT_HAS_PROPERTY"}]}])
    assert unstaged.json() == {"total": 1, "results": []}


def test_search_watermark_accepts_ms_or_iso_and_caps_paging_at_10000(fake):
    # Given 10,050 contacts modified one millisecond apart
    for i in range(10_050):
        fake.add("contacts", modified_at_ms=1_700_000_000_000 + i)
    api = Api(fake)

    def since(value):
        return [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": value}]}]
    # When searching from a watermark given as ms and as ISO
    by_ms = api.search(filterGroups=since("1700000010000"), sorts=SORT_MODIFIED, limit=200).json()
    by_iso = api.search(filterGroups=since("2023-11-14T22:13:30.000Z"), sorts=SORT_MODIFIED, limit=200).json()
    assert by_ms["total"] == by_iso["total"] == 50 and by_ms["results"] == by_iso["results"]
    # Then paging stops at 10,000 although total says more, and going past it is HubSpot's 400
    near_end = api.search(sorts=SORT_MODIFIED, limit=200, after="9800").json()
    assert near_end["total"] == 10_050 and near_end["paging"]["next"]["after"] == "10000"
    beyond = api.search(sorts=SORT_MODIFIED, limit=200, after="10000")
    assert beyond.status_code == 400 and beyond.json()["message"] == "There was a problem with the request."
    assert api.search(limit=201).status_code == 400


def test_search_lags_behind_writes_and_shows_the_previous_version_meanwhile():
    with FakeHubSpot(search_lag=0.3) as fake:
        old = fake.add("contacts", properties={"firstname": "Old"})["id"]
        time.sleep(0.35)
        fake.update("contacts", old, {"firstname": "New"})
        fake.add("contacts", properties={"firstname": "Brand"})
        api = Api(fake)
        assert [r["properties"]["firstname"] for r in api.search().json()["results"]] == ["Old"]
        time.sleep(0.35)
        assert [r["properties"]["firstname"] for r in api.search().json()["results"]] == ["New", "Brand"]


def test_rate_limits_search_per_second_and_the_rest_per_rolling_window():
    with FakeHubSpot(burst_limit=(3, 10.0)) as fake:
        # When a sixth search comes within a second: 429 SECONDLY, and no rate-limit headers on search
        searches = [Api(fake).search() for _ in range(6)]
        assert [a.status_code for a in searches] == [200] * 5 + [429]
        refused = searches[-1].json()
        assert refused["policyName"] == "SECONDLY" and refused["errorType"] == "RATE_LIMIT"
        assert refused["message"] == "You have reached your secondly limit."
        assert not any(h.lower().startswith("x-hubspot-ratelimit") for a in searches for h in a.headers)
        # When a fourth other call comes within the 10 s window: 429 TEN_SECONDLY_ROLLING, headers count down
        answers = [Api(fake).get("/crm/v3/objects/deals/1") for _ in range(4)]
        assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
        assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert answers[-1].status_code == 429 and answers[-1].json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert [c.status for c in fake.calls[6:]] == [404, 404, 404, 429]


def test_fault_injection_and_latency_touch_only_matching_requests(fake):
    # Given two 502s scripted for batch reads only
    contact, api = fake.add("contacts")["id"], Api(fake)
    url, batch = f"/crm/v3/objects/contacts/{contact}", "/crm/v3/objects/contacts/batch/read"
    fake.fail_next(2, 502, path_contains="/batch/read")
    # Then a GET passes, two batch reads fail with a JSON body, the third succeeds
    assert api.get(url).status_code == 200
    answers = [api.batch(batch, [contact]) for _ in range(3)]
    assert [a.status_code for a in answers] == [502, 502, 200] and answers[0].json()["status"] == "error"
    # And a scripted 429 carries the test's own body and headers
    fake.fail_next(1, 429, body={"status": "error", "policyName": "DAILY"}, headers={"Retry-After": "3"})
    limited = api.get(url)
    assert limited.json()["policyName"] == "DAILY" and limited.headers["Retry-After"] == "3"
    # And a hang outlasts a client timeout once, then requests answer promptly again
    fake.hang_next(1, 0.5, path_contains="/contacts/")
    with pytest.raises(requests.ReadTimeout):
        api.get(url, timeout=0.1)
    assert api.get(url, timeout=1).status_code == 200
    assert fake.count(path_contains="/batch/read", method="post") == 3
    # And latency delays every answer, concurrent requests in parallel
    fake.latency, started = 0.2, time.monotonic()
    threads = [threading.Thread(target=Api(fake).get, args=(url,)) for _ in range(5)]
    [t.start() for t in threads], [t.join() for t in threads]
    assert 0.2 <= time.monotonic() - started < 0.6


def test_oauth_exchange_refresh_expiry_portals_and_no_token_in_calls():
    with FakeHubSpot(tokens={"pat-static"}) as fake:
        # Given a record of portal 42 and an install code for it
        record, code, anon = fake.add("deals", portal_id=42)["id"], fake.issue_code(42), Api(fake, "")
        # When the code is exchanged, then refreshed
        grant = anon.token(grant_type="authorization_code", code=code).json()
        assert grant["hub_id"] == 42 and grant["expires_in"] == 1800 and grant["token_type"] == "bearer"
        fresh = anon.token(grant_type="refresh_token", refresh_token=grant["refresh_token"]).json()
        # Then both access tokens read portal 42's data; the static token sees another portal
        for token in (grant["access_token"], fresh["access_token"]):
            assert Api(fake, token).get(f"/crm/v3/objects/deals/{record}").status_code == 200
        assert Api(fake, "pat-static").get(f"/crm/v3/objects/deals/{record}").status_code == 404
        wrong = Api(fake, "wrong").get(f"/crm/v3/objects/deals/{record}")
        assert wrong.status_code == 401 and wrong.json()["category"] == "INVALID_AUTHENTICATION"
        assert fake.calls[2].portal == 42 and fake.calls[4].portal is None
        # And spent codes, bad refresh tokens and expired access tokens are refused as HubSpot does
        assert anon.token(grant_type="authorization_code", code=code).json()["status"] == "BAD_AUTH_CODE"
        bad = anon.token(grant_type="refresh_token", refresh_token="nope")
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
        fake.token_lifetime = 0
        short = anon.token(grant_type="refresh_token", refresh_token=grant["refresh_token"]).json()
        expired = Api(fake, short["access_token"]).get(f"/crm/v3/objects/deals/{record}")
        assert expired.status_code == 401 and expired.json()["category"] == "EXPIRED_AUTHENTICATION"
        secrets = [code, grant["refresh_token"], grant["access_token"], fresh["access_token"], "pat-static"]
        assert not any(secret in repr(fake.calls) for secret in secrets + ["shh"])


def test_writes_from_the_api_are_visible_with_integration_history(fake):
    contact, api = fake.add("contacts", properties={"lastname": "Old"})["id"], Api(fake)
    link = {"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                              "associationTypeId": 3}]}
    created = api.post("/crm/objects/2026-09/deals", json={"properties": {"dealname": "D", "amount": 5},
                                                           "associations": [link]})
    assert created.status_code == 201 and created.json()["properties"]["amount"] == "5"
    api.patch(f"/crm/v3/objects/contacts/{contact}", json={"properties": {"lastname": "New"}})
    history = api.get(f"/crm/v3/objects/contacts/{contact}", params={"propertiesWithHistory": "lastname"})
    assert [(h["value"], h["sourceType"]) for h in history.json()["propertiesWithHistory"]["lastname"]] == [
        ("New", "INTEGRATION"), ("Old", "CRM_UI")]
    inputs = [{"id": contact, "properties": {"lastname": "B"}}, {"id": "9", "properties": {}}]
    updated = api.post("/crm/v3/objects/contacts/batch/update", json={"inputs": inputs})
    assert updated.status_code == 207 and updated.json()["results"][0]["properties"]["lastname"] == "B"
    company = fake.add("companies")["id"]
    linked = api.put(f"/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}").json()
    assert [r["associationSpec"]["associationTypeId"] for r in linked["results"]] == [279, 280]
    deals = api.batch("/crm/v4/associations/contacts/deals/batch/read", [contact]).json()
    assert deals["results"][0]["to"][0]["toObjectId"] == int(created.json()["id"])


def test_batch_read_serves_property_history_as_hubspot_does(fake):
    # Given a ticket created in stage 1 in the UI, moved to 2 in the UI, then cleared and set again by the API
    ticket, api = fake.add("tickets", 5, {"hs_pipeline_stage": "1"}, modified_at_ms=1_700_000_000_000)["id"], Api(fake)
    fake.update("tickets", ticket, {"hs_pipeline_stage": "2"}, modified_at_ms=1_700_000_001_000)
    api.patch(f"/crm/v3/objects/tickets/{ticket}", json={"properties": {"hs_pipeline_stage": ""}})
    api.patch(f"/crm/v3/objects/tickets/{ticket}", json={"properties": {"hs_pipeline_stage": "3"}})
    # When it is read in a batch with the stage's history
    body = api.batch("/crm/v3/objects/tickets/batch/read", [ticket], properties=["hs_pipeline_stage"],
                     propertiesWithHistory=["hs_pipeline_stage"]).json()
    # Then the history is newest first, one ValueWithTimestamp per change: value (a clear is ""), ISO
    # timestamp, sourceType, and for the UI's changes the user as sourceId and updatedByUserId
    entries = body["results"][0]["propertiesWithHistory"]["hs_pipeline_stage"]
    assert [(e["value"], e["sourceType"]) for e in entries] == [
        ("3", "INTEGRATION"), ("", "INTEGRATION"), ("2", "CRM_UI"), ("1", "CRM_UI")]
    assert [e["timestamp"] for e in entries[2:]] == ["2023-11-14T22:13:21.000Z", "2023-11-14T22:13:20.000Z"]
    assert entries[3]["sourceId"] == f"userId:{entries[3]['updatedByUserId']}" and "sourceId" not in entries[0]
    # And a batch read with history takes at most 50 inputs, as HubSpot's
    refused = api.batch("/crm/v3/objects/tickets/batch/read", range(1, 52), propertiesWithHistory=["subject"])
    assert refused.status_code == 400 and "property histories is 50" in refused.json()["message"]
    assert api.batch("/crm/v3/objects/tickets/batch/read", range(1, 52), properties=["subject"]).status_code == 207


def test_writes_refuse_unknown_properties_and_bad_numbers_with_hubspots_400(fake):
    # Given a contact and a deal; the portal has HubSpot's default properties and nothing else
    contact, deal, api = fake.add("contacts")["id"], fake.add("deals")["id"], Api(fake)
    # When a create names a property the portal lacks
    unknown = api.post("/crm/objects/2026-09/contacts",
                       json={"properties": {"email": "a@x.io", "shoe_size": "9"}})
    # Then HubSpot's VALIDATION_ERROR: the legacy list in the message, the documented errors[] beside it
    body = unknown.json()
    assert unknown.status_code == 400 and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert body["errors"] == [{"message": 'Property "shoe_size" does not exist',
                               "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": ["shoe_size"]}}]
    assert body["message"].startswith('Property values were not valid: [{"isValid":false,')
    assert '"error":"PROPERTY_DOESNT_EXIST","name":"shoe_size"' in body["message"]
    # And a number property given words is refused, single and batch, and nothing was written
    bad_amount = api.patch(f"/crm/v3/objects/deals/{deal}", json={"properties": {"amount": "lots"}}).json()
    assert bad_amount["errors"][0]["code"] == "INVALID_DECIMAL"
    assert bad_amount["errors"][0]["context"] == {"propertyName": ["amount"]}
    whole = api.post("/crm/v3/objects/companies", json={"properties": {"numberofemployees": "2.5"}})
    assert whole.status_code == 400 and whole.json()["errors"][0]["code"] == "INVALID_INTEGER"
    batch = api.post("/crm/v3/objects/contacts/batch/update", json={"inputs": [
        {"id": contact, "properties": {"firstname": "Ok"}}, {"id": contact, "properties": {"nope": "x"}}]})
    assert batch.status_code == 400 and batch.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert api.get(f"/crm/v3/objects/contacts/{contact}").json()["properties"].get("firstname") is None
    # And with objectWriteTraceId only the refused input fails, in a 207 that echoes its trace id
    traced = api.post("/crm/v3/objects/deals/batch/create", json={"inputs": [
        {"properties": {"dealname": "Good", "amount": "10.5"}, "objectWriteTraceId": "t1"},
        {"properties": {"missing": "x"}, "objectWriteTraceId": "t2"}]})
    result = traced.json()
    assert traced.status_code == 207 and [r["properties"]["dealname"] for r in result["results"]] == ["Good"]
    assert result["errors"][0]["context"] == {"objectWriteTraceId": ["t2"]}
    assert "PROPERTY_DOESNT_EXIST" in result["errors"][0]["message"]


def test_properties_a_test_seeds_or_defines_can_be_written(fake):
    # Given a custom property seeded on one contact, and a number property defined without a record
    contact = fake.add("contacts", properties={"favourite_colour": "teal"})["id"]
    fake.define_property("deals", "margin", "number")
    api = Api(fake)
    # Then API writes may set them, and the defined one is checked as a number
    assert api.patch(f"/crm/v3/objects/contacts/{contact}",
                     json={"properties": {"favourite_colour": "red"}}).status_code == 200
    assert api.post("/crm/v3/objects/deals", json={"properties": {"margin": "0.25"}}).status_code == 201
    assert api.post("/crm/v3/objects/deals", json={"properties": {"margin": "a lot"}}).status_code == 400
    # And seeding a value unfit for an existing number property is a mistake the test hears about
    with pytest.raises(ValueError, match="amount was not a valid number"):
        fake.add("deals", properties={"amount": "lots"})


def test_a_contact_whose_email_exists_is_a_409_conflict(fake):
    # Given a contact with an email
    existing, api = fake.add("contacts", properties={"email": "ada@example.com"})["id"], Api(fake)
    # When another contact is created with that email (in another case), alone or in a batch
    single = api.post("/crm/v3/objects/contacts", json={"properties": {"email": "Ada@Example.com"}})
    batch = api.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [
        {"properties": {"email": "new@example.com"}}, {"properties": {"email": "ada@example.com"}}]})
    twice = api.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [
        {"properties": {"email": "twin@example.com"}}, {"properties": {"email": "twin@example.com"}}]})
    # Then HubSpot's 409 naming the existing id, and nothing of the batches was created
    assert single.status_code == 409 and single.json()["category"] == "CONFLICT"
    assert single.json()["message"] == f"Contact already exists. Existing ID: {existing}"
    assert batch.status_code == 409 and twice.status_code == 409
    assert api.search(filterGroups=[]).json()["total"] == 1
    # And another email, or the same email on a company, is fine
    other = api.post("/crm/v3/objects/contacts", json={"properties": {"email": "b@example.com"}})
    company = api.post("/crm/v3/objects/companies", json={"properties": {"name": "ada@example.com"}})
    assert other.status_code == company.status_code == 201


def test_associations_parameter_on_single_get_and_list(fake):
    # Given a contact associated with two companies, and one without associations
    linked, lonely = fake.add("contacts")["id"], fake.add("contacts")["id"]
    companies = [fake.add("companies")["id"] for _ in range(2)]
    for company in companies:
        fake.associate("contacts", linked, "companies", company)
    api = Api(fake)
    # When read with associations=companies,deals,widgets
    single = api.get(f"/crm/objects/2026-09/contacts/{linked}",
                     params={"associations": "companies,deals,widgets"})
    listed = api.get("/crm/v3/objects/contacts", params={"associations": "companies"}).json()["results"]
    # Then the record carries its associated ids by type (types with none, and unknown ones, left out)
    expected = {"companies": {"results": [{"id": c, "type": "contact_to_company"} for c in companies]}}
    assert single.json()["associations"] == expected
    assert [r.get("associations") for r in listed] == [expected, None] and listed[1]["id"] == lonely
    # And without the parameter nothing changes
    assert "associations" not in api.get(f"/crm/v3/objects/contacts/{linked}").json()


def test_rate_limit_headers_follow_the_token_kind_and_the_daily_limit():
    with FakeHubSpot(tokens={"pat-static"}, daily_limit=3) as fake:
        fake.add("deals", 1)
        fake.add("deals", 2, portal_id=42)
        private, oauth_code = Api(fake, "pat-static"), fake.issue_code(42)
        grant = Api(fake, "").token(grant_type="authorization_code", code=oauth_code).json()
        oauth = Api(fake, grant["access_token"])
        # When a private-app token reads: 100 per 10 s, and the account's day counts down
        answers = [private.get("/crm/v3/objects/deals/1") for _ in range(4)]
        first = answers[0].headers
        assert first["X-HubSpot-RateLimit-Max"] == "100"
        assert first["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert first["X-HubSpot-RateLimit-Daily"] == "3"
        assert [a.headers["X-HubSpot-RateLimit-Daily-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        # Then the day's fourth request is HubSpot's 429 DAILY
        assert answers[-1].status_code == 429 and answers[-1].json()["policyName"] == "DAILY"
        assert answers[-1].json()["message"] == "You have reached your daily limit."
        # And an OAuth token sees 110 per 10 s and no daily headers (HubSpot sends none for OAuth)
        seen = oauth.get("/crm/v3/objects/deals/2")
        assert seen.status_code == 200 and seen.headers["X-HubSpot-RateLimit-Max"] == "110"
        assert not [h for h in seen.headers if h.lower().startswith("x-hubspot-ratelimit-daily")]


def test_only_api_versions_hubspot_ships_are_served(fake):
    contact, api = fake.add("contacts")["id"], Api(fake)
    for version in ("2026-03", "2026-09", "2027-03"):
        assert api.get(f"/crm/objects/{version}/contacts/{contact}").status_code == 200
    # A month HubSpot never ships is a path it does not serve, not a missing record
    unshipped = api.get(f"/crm/objects/2026-05/contacts/{contact}")
    assert unshipped.status_code == 404 and unshipped.json()["category"] == "RESOURCE_NOT_FOUND"
    assert "2026-05" in unshipped.json()["message"] and "2026-09" in unshipped.json()["message"]
    assert api.post("/crm/associations/2026-04/contacts/companies/batch/read",
                    json={"inputs": []}).json()["category"] == "RESOURCE_NOT_FOUND"


def test_routes_the_fake_lacks_answer_a_404_that_says_so(fake):
    contact, api = fake.add("contacts")["id"], Api(fake)
    for method, path in (("GET", "/x"), ("PUT", f"/crm/v3/objects/contacts/{contact}"),
                         ("GET", "/crm/v3/schemas")):
        answer = api.request(method, path)
        body = answer.json()
        assert answer.status_code == 404 and body["status"] == "error"
        assert body["category"] not in ("OBJECT_NOT_FOUND", None)
        assert body["message"].startswith(f"fake HubSpot does not implement {method} {path}")


def test_token_endpoint_checks_client_id_secret_and_redirect_uri():
    app = OAuthApp("app-id", "app-secret", ("https://hooks.example.com/oauth/callback",))
    with FakeHubSpot(oauth_app=app) as fake:
        anon = Api(fake, "")

        def exchange(**changes):
            form = {"grant_type": "authorization_code", "code": fake.issue_code(7), "client_id": "app-id",
                    "client_secret": "app-secret", "redirect_uri": "https://hooks.example.com/oauth/callback",
                    **changes}
            return anon.post("/oauth/v1/token", data=form)
        # When the app's own credentials and redirect are sent: a token
        assert exchange().json()["hub_id"] == 7
        # Then another client id, a wrong secret or a foreign redirect are HubSpot's 400s
        for changes, status in (({"client_id": "other"}, "BAD_CLIENT_ID"),
                                ({"client_secret": "guess"}, "BAD_CLIENT_SECRET"),
                                ({"redirect_uri": "https://evil.example/cb"}, "BAD_REDIRECT_URI"),
                                ({"redirect_uri": ""}, "BAD_REDIRECT_URI")):
            refused = exchange(**changes)
            assert refused.status_code == 400 and refused.json()["status"] == status, changes
            assert set(refused.json()) == {"error", "error_description", "status", "message"}
            assert "app-secret" not in refused.text
        # And a code issued for one redirect URI cannot be exchanged naming another the app allows
        code = fake.issue_code(7, redirect_uri="https://hooks.example.com/other")
        assert exchange(code=code).json()["status"] == "BAD_REDIRECT_URI"


def test_without_an_app_the_first_token_request_names_it():
    with FakeHubSpot() as fake:
        anon = Api(fake, "")
        first = anon.token(grant_type="authorization_code", code=fake.issue_code(1))
        assert first.status_code == 200 and fake.oauth_app.client_id == "app"
        refresh = first.json()["refresh_token"]
        wrong = anon.token(grant_type="refresh_token", refresh_token=refresh, client_secret="other")
        assert wrong.status_code == 400 and wrong.json()["status"] == "BAD_CLIENT_SECRET"
        assert anon.token(grant_type="refresh_token", refresh_token=refresh).status_code == 200
