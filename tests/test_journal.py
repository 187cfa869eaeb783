"""The Webhooks Journal as an intake: the fake serves it, ``hubhook journal`` reads it into the queue.

Real Redis, real RQ workers, the receiver over real HTTP; HubSpot (its journal, its webhooks, its
pre-signed file links) is the fake over HTTP.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest

from jobs.journal import format, reader
from jobs.journal.client import JournalClient
from jobs.poller.cursor import Cursor
from webhook_service import keys
from webhook_service.receiver.signature import signed_headers
from webhook_service.telemetry import stats
from webhook_service.telemetry.prometheus import RedisCollector

from .conftest import ROOT, SECRET, drain, queued_jobs
from .journal_support import (
    CLIENT_ID,
    Ledger,
    journal_config,
    queued_events,
    running_reader,
    state,
    update_event,
)
from .ops_support import wait_until
from .webhook_support import running_receiver

JOURNAL = "/webhooks-journal/journal/2026-09"


def token(hubspot) -> dict:
    answer = requests.post(f"{hubspot.url}/oauth/v1/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
        "scope": "developer.webhooks_journal.read"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_the_fake_serves_the_journal_as_hubspot_documents_it(hubspot):
    # Given the fake journaling writes, and the app's client-credentials token
    journal = hubspot.serve_journal(url_lifetime=60)
    auth = token(hubspot)
    # Then an empty journal answers 204, and a CRM token is refused
    assert requests.get(f"{hubspot.url}{JOURNAL}/earliest", headers=auth).status_code == 204
    crm_token = {"Authorization": "Bearer test-access-token"}
    assert requests.get(f"{hubspot.url}{JOURNAL}/earliest", headers=crm_token).status_code == 401
    # When a deal is created, then changed
    hubspot.add("deals", 501, {"dealname": "Renewal"})
    hubspot.update("deals", 501, {"dealname": "Renewal 2", "amount": "10"})
    # Then two files hold a CREATE, an UPDATE per write with every property it set, one occurredAt each
    batch = requests.get(f"{hubspot.url}{JOURNAL}/batch/earliest/10", headers=auth).json()
    pointers = format.pointers(batch)
    assert len(pointers) == 2 and batch["status"] == "COMPLETE"
    files = [requests.get(p.url).json() for p in pointers]   # pre-signed: no Authorization header
    assert [[e["action"] for e in f["journalEvents"]] for f in files] == [["CREATE", "UPDATE"], ["UPDATE"]]
    assert files[1]["journalEvents"][0]["propertyChanges"] == {"dealname": "Renewal 2", "amount": "10"}
    assert files[0]["offset"] == pointers[0].offset
    # And next after the first is the second, after the last is 204, latest is the last
    after = requests.get(f"{hubspot.url}{JOURNAL}/offset/{pointers[0].offset}/next", headers=auth).json()
    assert after["currentOffset"] == pointers[1].offset
    assert requests.get(f"{hubspot.url}{JOURNAL}/offset/{pointers[1].offset}/next", headers=auth).status_code == 204
    assert requests.get(f"{hubspot.url}{JOURNAL}/latest", headers=auth).json()["currentOffset"] == pointers[1].offset
    # When two minutes pass, the links expire; when three days pass, the offsets are gone
    journal.advance(120)
    assert requests.get(pointers[0].url).status_code == 403
    journal.advance(3 * 86400)
    assert requests.get(f"{hubspot.url}{JOURNAL}/offset/{pointers[0].offset}/next", headers=auth).status_code == 404
    assert requests.get(f"{hubspot.url}{JOURNAL}/earliest", headers=auth).status_code == 204
    # And no journal call counted against the CRM's rate limits (no rate-limit headers on them)
    answer = requests.get(f"{hubspot.url}{JOURNAL}/earliest", headers=auth)
    assert "X-HubSpot-RateLimit-Remaining" not in answer.headers


def test_intake_mode_end_to_end_handlers_see_journal_changes(config, hubspot, redis):
    # Given intake mode (no receiver at all), a journaling portal and handlers for deals
    config = journal_config(config)
    hubspot.serve_journal()
    ledger = Ledger("deal.creation", "deal.propertyChange")
    stats.flush(redis)   # figures earlier tests of this process left in the buffer are not this test's
    redis.delete(keys.STATS)
    # When deals are created and changed in HubSpot, and the reader runs until it has nothing new
    hubspot.add("deals", 601, {"dealname": "A"})
    hubspot.update("deals", 601, {"dealname": "B", "amount": "5"})
    hubspot.add("deals", 602, {"dealname": "C"})
    reader.run(config, once=True)
    drain(config, ledger.router)
    # Then every change reached its handler once, as a journal change, in the webhook shape
    assert ledger.calls == {
        ("deal.creation", "601", None, None): 1, ("deal.propertyChange", "601", "dealname", "A"): 1,
        ("deal.propertyChange", "601", "dealname", "B"): 1, ("deal.propertyChange", "601", "amount", "5"): 1,
        ("deal.creation", "602", None, None): 1, ("deal.propertyChange", "602", "dealname", "C"): 1}
    assert set(ledger.sources) == {"journal"}
    # And the offset is the last file's, with the figures `hubhook journal status` shows
    row = reader.status(config, redis)
    assert row["offset"] == hubspot.journal.files[-1].offset and row["at_latest"] and row["lag_seconds"] == 0
    assert (row["files"], row["events_read"], row["events_enqueued"]) == (3, 5, 6)
    # And /metrics carries the lag and the reader's counters
    stats.flush(redis)
    registry = CollectorRegistry()
    registry.register(RedisCollector(config, redis))
    scraped = generate_latest(registry).decode()
    assert "hubhook_journal_lag_seconds 0.0" in scraped and "hubhook_journal_files_total 3.0" in scraped
    assert 'hubhook_journal_events_total{outcome="enqueued"} 6.0' in scraped
    # When the reader runs again with nothing new, nothing more is enqueued
    reader.run(config, once=True)
    assert queued_events(redis, config) == []


def test_reconcile_mode_heals_a_receiver_outage_with_nothing_lost_and_nothing_twice(config, hubspot, redis):
    # Given reconcile mode: the receiver takes push webhooks, the journal heals what they miss
    config = journal_config(config, mode="reconcile")
    hubspot.serve_journal()
    ledger = Ledger("deal.creation", "deal.propertyChange")
    with running_receiver(config) as (url, config):
        emitter = hubspot.emit_webhooks_to(url, SECRET, retry_delays=())
        hubspot.add("deals", 701, {"dealname": "before"})
        assert emitter.wait_idle()
        # When the receiver is unreachable for "10 minutes" (the journal's clock moves on, nobody waits)
        # while deals change, and HubSpot's retries of those deliveries are spent
        dead = hubspot.emit_webhooks_to(f"http://127.0.0.1:9/{url.split('/', 3)[3]}", SECRET, retry_delays=())
        for i in range(5):
            hubspot.update("deals", 701, {"amount": str(i)})
            hubspot.add("deals", 710 + i, {"dealname": f"during {i}"})
        assert dead.wait_idle()
        missed = [e for d in dead.deliveries for e in d.events]
        hubspot.journal.advance(600)
        assert missed and all(d.status is None for d in dead.deliveries)
        # ... and the receiver is back for what happens next
        back = hubspot.emit_webhooks_to(url, SECRET, retry_delays=())
        hubspot.update("deals", 701, {"dealname": "after"})
        assert back.wait_idle()
        calls_before = hubspot.count(path_contains="/crm/")
        reader.run(config, once=True)
        reader_crm_calls = hubspot.count(path_contains="/crm/") - calls_before
        # ... and then HubSpot manages to deliver the missed webhooks after all (late, after the journal)
        body = json.dumps(missed).encode()
        late = requests.post(url, data=body, headers=signed_headers(SECRET, body, url))
        assert late.status_code in (200, 204)
        drain(config, ledger.router)
    # Then every change reached the handlers exactly once: 0 lost, 0 duplicate handler calls
    expected = {("deal.creation", "701", None, None), ("deal.propertyChange", "701", "dealname", "before"),
                ("deal.propertyChange", "701", "dealname", "after")}
    expected |= {("deal.propertyChange", "701", "amount", str(i)) for i in range(5)}
    expected |= {("deal.creation", str(710 + i), None, None) for i in range(5)}
    expected |= {("deal.propertyChange", str(710 + i), "dealname", f"during {i}") for i in range(5)}
    assert set(ledger.calls) == expected
    assert all(count == 1 for count in ledger.calls.values()), ledger.calls
    assert set(ledger.sources) == {"webhook", "journal"}
    # And the reader itself made no CRM call; the changes webhooks had brought were dropped by identity
    assert reader_crm_calls == 0
    assert reader.status(config, redis)["duplicates"] == 3


def test_a_reader_killed_mid_file_resumes_and_the_queue_holds_each_change_once(config, hubspot, redis, env):
    # Given a journal file of 3,000 changes and a reader whose queue takes at most 1,000 waiting events
    config = journal_config(config)
    offset = hubspot.journal.append([update_event(9000 + i, {"amount": str(i)}, 1_760_000_000_000 + i)
                                     for i in range(3000)])
    run_env = {**env, "HUBSPOT_CLIENT_ID": CLIENT_ID, "HUBHOOK_JOURNAL_MODE": "intake",
               "HUBHOOK_JOURNAL_POLL_INTERVAL": "0.05", "HUBHOOK_POLL_LOCK_TTL": "1",
               "HUBHOOK_BACKPRESSURE_RETRY_AFTER": "1", "HUBHOOK_LOG_FORMAT": "text"}
    hubhook = [sys.executable, "-m", "webhook_service.cli", "journal"]
    first = subprocess.Popen(hubhook, env={**run_env, "HUBHOOK_MAX_QUEUE_DEPTH": "1000"}, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # When it has enqueued part of the file (the queue is full) and is SIGKILLed there
        wait_until(lambda: len(queued_events(redis, config)) >= 1000, 30, "the first 1,000 events enqueued")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert "offset" not in state(redis)
        partial = len(queued_events(redis, config))
        assert 1000 <= partial < 3000
        # ... and another reader starts once the dead one's lock expired
        wait_until(lambda: not redis.exists(keys.JOURNAL_LEADER), 10, "the killed reader's lock to expire")
        second = subprocess.run([*hubhook, "--once"], env=run_env, cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 0, second.stderr
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    # Then the queue holds each of the 3,000 changes exactly once, and the offset is the file's
    events = queued_events(redis, config)
    assert len(events) == 3000
    assert sorted(e["objectId"] for e in events) == list(range(9000, 12000))
    assert state(redis)["offset"] == offset
    assert int(state(redis)["duplicates"]) == partial


def test_an_expired_offset_is_said_once_restarts_at_earliest_and_rewinds_the_search_reconcile(
        config, hubspot, redis, caplog):
    # Given a reader that read one file, and the poller's search cursor for deals further on
    config = journal_config(config)
    hubspot.serve_journal()
    hubspot.add("deals", 801, {"dealname": "old"})
    reader.run(config, once=True)
    read_until = int(state(redis)["last_event_ms"])
    cursor = Cursor(redis, 0, "deal", "search")
    cursor.start(read_until + 3_600_000)
    # When the reader is away longer than the journal keeps events, and new changes come meanwhile
    hubspot.journal.advance(4 * 86400)
    hubspot.add("deals", 802, {"dealname": "new"})
    with caplog.at_level(logging.WARNING, logger="hubhook.journal"):
        reader.run(config, once=True)
    # Then it said so once, naming what heals the gap, and read what the journal still holds
    lost = [r for r in caplog.records if "no longer serves" in r.getMessage()]
    assert len(lost) == 1 and "search reconcile" in lost[0].getMessage()
    assert [e["objectId"] for e in queued_events(redis, config)][-2:] == [802, 802]
    row = reader.status(config, redis)
    assert row["offsets_lost"] == 1 and row["offset"] == hubspot.journal.files[-1].offset
    # And the poller's search walks again from the last change the journal had given
    assert cursor.load().position == read_until and cursor.load().floor == read_until


def test_two_readers_one_active(config, hubspot, redis):
    # Given two journal readers running at once
    config = journal_config(config)
    hubspot.journal.append([update_event(1, {"amount": "1"}, 1_760_000_000_000)])
    with running_reader(config) as first_stop, running_reader(config):
        wait_until(lambda: state(redis).get("offset"), 15, "the first file read")
        leader = redis.get(keys.JOURNAL_LEADER)
        # When more files come
        for i in range(2, 6):
            hubspot.journal.append([update_event(i, {"amount": str(i)}, 1_760_000_000_000 + i)])
        wait_until(lambda: state(redis).get("offset") == hubspot.journal.files[-1].offset, 15, "every file")
        # Then exactly one read them (the lock's holder did not change), each change enqueued once
        assert redis.get(keys.JOURNAL_LEADER) == leader
        assert sorted(e["objectId"] for e in queued_events(redis, config)) == [1, 2, 3, 4, 5]
        assert int(state(redis)["files"]) == 5
        del first_stop


def test_a_file_of_10000_events_becomes_jobs_of_at_most_500(config, hubspot, redis):
    # Given one journal file of 10,000 property changes (HubSpot's reported maximum)
    config = journal_config(config)
    events = [update_event(20_000 + i, {"dealstage": "won"}, 1_760_000_000_000 + i) for i in range(10_000)]
    offset = hubspot.journal.append(events)
    # When the reader reads it
    reader.run(config, once=True)
    # Then all 10,000 are in the queue once, in jobs of at most 500 events, and the offset is the file's
    jobs = queued_jobs(redis, reader.build_queue(config, redis))
    assert sum(len(j.args[0]) for j in jobs) == 10_000 and max(len(j.args[0]) for j in jobs) == reader.CHUNK
    assert all(j.kwargs["source"] == "journal" for j in jobs)
    assert state(redis)["offset"] == offset and state(redis)["events_read"] == "10000"


def test_unknown_actions_types_and_fields_are_counted_and_malformed_files_retried_then_skipped(
        config, hubspot, redis):
    # Given a file with an unknown action, an unknown event type, an unknown field, and one good change;
    # then a file that is no JSON at all; then a good gzip'ed file
    config = journal_config(config)
    good = update_event(31, {"amount": "3"}, 1_760_000_000_000)
    hubspot.journal.append([{**good, "action": "TELEPORT"}, {"type": "listMembership", "action": "CREATE"},
                            {**good, "brandNewField": 1}, "not an object"])
    bad = hubspot.journal.append([], raw=b"<html>oops</html>")
    last = hubspot.journal.append([], raw=gzip.compress(json.dumps(
        {"offset": "x", "journalEvents": [update_event(32, {"amount": "4"}, 1_760_000_000_001)]}).encode()))
    stats.flush(redis)   # figures earlier tests of this process left in the buffer are not this test's
    redis.delete(keys.STATS)
    # When the reader runs until it has nothing new
    for _ in range(reader.MALFORMED_ATTEMPTS):
        reader.run(config, once=True)
        if state(redis).get("offset") == last:
            break
    stats.flush(redis)
    # Then the good changes were enqueued, the rest counted by reason, and the bad file skipped on record
    assert [e["objectId"] for e in queued_events(redis, config)] == [31, 32]
    skipped = stats.read(redis).series("journal_skipped")
    reasons = {dict(k)["reason"]: v for k, v in skipped.items()}
    assert reasons["action:TELEPORT"] == 1 and reasons["field:brandNewField"] == 1
    assert reasons["malformed_event"] == 1 and any(r.startswith("action:") or r.startswith("type:") for r in reasons)
    row = reader.status(config, redis)
    assert row["skipped_offset"] == bad and row["skipped_files"] == 1 and row["offset"] == last
    assert int(state(redis).get("malformed_attempts") or 0) == 0


def test_a_429_waits_retry_after_and_no_journal_call_takes_from_the_crm_budget(config, hubspot, redis):
    # Given a journal that answers its next read 429 with Retry-After: 1
    config = journal_config(config)
    hubspot.journal.append([update_event(41, {"amount": "1"}, 1_760_000_000_000)])
    hubspot.fail_next(1, 429, path_contains="/webhooks-journal/journal", headers={"Retry-After": "1"})
    # When the reader runs
    with running_reader(config):
        wait_until(lambda: state(redis).get("offset"), 15, "the file read after the wait")
    # Then it said why it waited, read the file afterwards, and used none of the CRM rate budget
    assert "429" in state(redis)["last_error"]
    assert [e["objectId"] for e in queued_events(redis, config)] == [41]
    assert not list(redis.scan_iter(match=f"{keys.RATE}*"))
    stamps = [c.at for c in hubspot.calls if c.path.startswith("/webhooks-journal/")]
    assert stamps[1] - stamps[0] >= 1.0


def test_the_token_is_renewed_before_it_expires_and_never_stored(config, hubspot, redis):
    # Given tokens that live 2 seconds
    hubspot.token_lifetime = 2
    client = JournalClient(journal_config(config))
    try:
        # When the client keeps reading past four fifths of a token's life
        client.earliest(1)
        first = hubspot.count(path_contains="/oauth/v1/token")
        wait_until(lambda: client.earliest(1) == [] and hubspot.count(path_contains="/oauth/v1/token") > first,
                   10, "a second token")
    finally:
        client.close()
    # Then every journal call was accepted (no 401 ever), and no token reached Redis
    assert all(c.status != 401 for c in hubspot.calls)
    assert client._token is not None and not any(client._token.encode() in (redis.dump(k) or b"")
                                                 for k in redis.scan_iter())


def test_journal_commands_subscribe_idempotently_list_and_show_status(config, hubspot, redis, env, tmp_path):
    # Given handlers for deal stages and contact creations, and the app's credentials
    (tmp_path / "journal_hooks.py").write_text(
        "from webhook_service import Router\nrouter = Router()\n"
        "@router.on('deal.propertyChange', property='dealstage')\ndef stage(event): pass\n"
        "@router.on('contact.creation')\ndef new(event): pass\n")
    run_env = {**env, "HUBSPOT_CLIENT_ID": CLIENT_ID, "HUBHOOK_HANDLERS": "journal_hooks:router",
               "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}

    def hubhook(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "webhook_service.cli", *args], env=run_env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    # When the user subscribes twice
    first, second = hubhook("journal", "subscribe", "--portal", "62515"), hubhook("journal", "subscribe",
                                                                                 "--portal", "62515")
    # Then the first run created one subscription per type, the second none, and the list shows them
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 2 and second.stdout.count("created") == 0
    assert second.stdout.count("exists") == 2
    assert sorted((s["objectTypeId"], tuple(s["actions"]), tuple(s["properties"]))
                  for s in hubspot.journal.subscriptions) == [("0-1", ("CREATE",), ()),
                                                              ("0-3", ("UPDATE",), ("dealstage",))]
    listed = hubhook("journal", "subscriptions")
    assert "0-3 UPDATE properties=dealstage" in listed.stdout and SECRET not in listed.stdout
    # And status before any reader ran says so; after a read it shows the offset, in `hubhook status` too
    assert "no reader has run yet" in hubhook("journal", "status").stdout
    hubspot.journal.append([update_event(51, {"dealstage": "won"}, 1_760_000_000_000)])
    reader.run(journal_config(config), once=True)
    status = hubhook("journal", "status")
    assert hubspot.journal.files[-1].offset in status.stdout and "events read 1" in status.stdout
    assert hubspot.journal.files[-1].offset in hubhook("status").stdout
    # And the journal reader without a mode is one line saying what to set, exit status non-zero
    no_mode = hubhook("journal", "--once")
    assert no_mode.returncode != 0 and "HUBHOOK_JOURNAL_MODE" in no_mode.stderr
    assert len(no_mode.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("raw, expected", [
    ("2026-03-01T10:00:00.123Z", 1772359200123), ("1772359200123", 1772359200123), (1772359200123, 1772359200123),
    ("soon", None), (True, None)])
def test_occurred_at_is_read_in_every_spelling_seen(raw, expected):
    # Given an occurredAt as ISO-8601, as milliseconds in a string or a number, or nonsense
    # Then it is epoch milliseconds, or None (the event is skipped and counted)
    assert format.occurred_ms(raw) == expected


def test_journal_events_map_to_the_webhook_shape_of_the_same_change():
    # Given journal events of a classic type, a generic one, an association and a merge
    events = [update_event(1, {"a": "1", "b": None}, 5),
              {"type": "crmObject", "portalId": 7, "occurredAt": "5", "action": "CREATE", "objectTypeId": "2-99",
               "objectId": "3"},
              {"type": "association", "portalId": 7, "occurredAt": "5", "action": "ASSOCIATION_REMOVED",
               "fromObjectTypeId": "0-1", "fromObjectId": 4, "toObjectTypeId": "0-2", "toObjectId": 9},
              {"type": "crmObject", "portalId": 7, "occurredAt": "5", "action": "MERGE", "objectTypeId": "0-5",
               "objectId": 6, "mergedObjectIds": [8]}]
    # When they are mapped
    mapped = format.map_file(events)
    # Then each is what a push webhook of that change carries: one change per property of an UPDATE
    assert [(e["subscriptionType"], e.get("propertyName"), e.get("propertyValue")) for e in mapped.events] == [
        ("deal.propertyChange", "a", "1"), ("deal.propertyChange", "b", ""), ("object.creation", None, None),
        ("contact.associationChange", None, None), ("ticket.merge", None, None)]
    assert mapped.events[2]["objectTypeId"] == "2-99" and mapped.events[3]["associationRemoved"] is True
    assert mapped.events[4]["mergedObjectIds"] == [8] and not mapped.skipped



def test_reconcile_mode_leaves_a_young_change_to_its_webhook_first(config, hubspot, redis):
    # Given reconcile mode with the default delay, and one change made just now
    config = journal_config(config, mode="reconcile", journal_reconcile_delay=60.0)
    hubspot.serve_journal()
    hubspot.add("deals", 901, {"dealname": "fresh"})
    # When the reader runs until nothing is due
    reader.run(config, once=True)
    # Then nothing was enqueued and the offset did not move: the file is read once the change is a minute old
    assert queued_events(redis, config) == [] and "offset" not in state(redis)
    # When the same change is older than the delay (a reader with a shorter delay stands for a minute later)
    reader.run(journal_config(config, mode="reconcile", journal_reconcile_delay=0.0), once=True)
    # Then it is read
    assert [e["objectId"] for e in queued_events(redis, config)] == [901, 901]


def test_an_expired_download_link_is_asked_for_again(config, hubspot, redis):
    # Given download links valid for one second, and a first download that HubSpot's storage answers late
    config = journal_config(config)
    hubspot.serve_journal(url_lifetime=1)
    hubspot.add("deals", 951, {"dealname": "slow"})
    hubspot.hang_next(1, 1.5, path_contains="/_fake-s3/")
    # When the reader runs until it has nothing new
    reader.run(config, once=True)
    # Then the expired link was refused (403), a fresh pointer asked for, and the file read once
    downloads = [c.status for c in hubspot.calls if c.path.startswith("/_fake-s3/")]
    assert downloads == [403, 200]
    assert [e["objectId"] for e in queued_events(redis, config)] == [951, 951]
