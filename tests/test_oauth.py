"""The OAuth app: install and callback, tokens per portal (encrypted, never logged), refresh before
expiry by exactly one process, 401 recovery, and each portal's events enriched with its own token."""
import dataclasses
import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from webhook_service import Router
from webhook_service.errors import ConfigError
from webhook_service.oauth import flow as oauth
from webhook_service.oauth.token_store import TokenStore
from webhook_service.operator import dead_letters
from webhook_service.receiver.app import create_app
from webhook_service.telemetry import object_history
from webhook_service.testing import make_event

from .conftest import ROOT, drain
from .quota_support import HUBHOOK, deliver, ledger, spawn_workers, stop, wait_until

CLIENT_ID = "test-client-id"


@pytest.fixture
def oauth_config(config):
    return dataclasses.replace(config, access_token=None, client_id=CLIENT_ID,
                               oauth_scopes=("oauth", "crm.objects.contacts.read"))


@pytest.fixture
def web(oauth_config):
    return create_app(oauth_config).test_client()


def install(web, hubspot, hub_id: int) -> dict:
    """What a HubSpot admin does: open /oauth/install, consent, come back to the callback."""
    state = parse_qs(urlparse(web.get("/oauth/install").headers["Location"]).query)["state"][0]
    response = web.get(f"/oauth/callback?code={hubspot.issue_code(hub_id)}&state={state}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def everything_in(redis) -> str:
    """Every key name and value in Redis, RQ job arguments decoded, as one string to search."""
    parts = []
    for name in redis.scan_iter("*"):
        parts.append(name.decode())
        kind = redis.type(name).decode()
        if name.startswith(b"rq:job:") and kind == "hash":
            job = Job.fetch(name.decode()[len("rq:job:"):], connection=redis, serializer=JSONSerializer)
            parts.append(repr((job.args, job.kwargs, job.meta)))
        elif kind == "string":
            parts.append(redis.get(name).decode("latin-1"))
        elif kind == "hash":
            parts += [v.decode("latin-1") for v in redis.hgetall(name).values()]
        elif kind == "list":
            parts += [v.decode("latin-1") for v in redis.lrange(name, 0, -1)]
    return "\n".join(parts)


def test_install_redirects_to_hubspot_with_a_single_use_state(web, redis):
    # When an admin opens /oauth/install
    response = web.get("/oauth/install")
    # Then they are sent to HubSpot's consent screen for this app, with an unguessable state
    assert response.status_code == 302
    location = urlparse(response.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://app.hubspot.com/oauth/authorize"
    assert query["client_id"] == [CLIENT_ID] and query["scope"] == ["oauth crm.objects.contacts.read"]
    assert query["redirect_uri"] == ["https://hooks.example.com/oauth/callback"]
    assert len(query["state"][0]) >= 40 and query["state"][0] not in everything_in(redis)


def test_thousands_of_install_requests_write_nothing_to_redis(web, redis):
    # Given Redis as earlier tests' processes left it (the suite shares one server)
    keys_before = set(redis.keys("*"))
    before = redis.info("memory")["used_memory"]
    # When an unauthenticated client opens /oauth/install 5,000 times (each once filled a key for 10 minutes)
    states = {parse_qs(urlparse(web.get("/oauth/install").headers["Location"]).query)["state"][0]
              for _ in range(5000)}
    # Then every state is different, and Redis holds no new key and no more memory than before
    assert len(states) == 5000
    assert set(redis.keys("*")) == keys_before
    assert redis.info("memory")["used_memory"] - before < 64 * 1024


def test_callbacks_remember_used_states_in_one_capped_expiring_key(web, hubspot, redis, oauth_config):
    # Given 300 states of ours, used by callbacks whose codes HubSpot refuses
    states = [parse_qs(urlparse(web.get("/oauth/install").headers["Location"]).query)["state"][0]
              for _ in range(300)]
    for state in states:
        assert web.get(f"/oauth/callback?code=bad&state={state}").status_code == 400
    # Then Redis holds one key for all of them, which expires by itself
    assert redis.keys("hubhook:oauth:*") == [b"hubhook:oauth:used-states"]
    assert redis.zcard("hubhook:oauth:used-states") == 300
    assert 0 < redis.ttl("hubhook:oauth:used-states") <= oauth.STATE_TTL + 60
    # And past its cap, a fresh state is refused as "busy" instead of growing the key
    fresh = [oauth.issue_state(oauth_config) for _ in range(3)]
    checks = [oauth.consume_state(redis, oauth_config, state, cap=301) for state in fresh]
    assert checks == [oauth.StateCheck.OK, oauth.StateCheck.BUSY, oauth.StateCheck.BUSY]
    assert redis.zcard("hubhook:oauth:used-states") == 301


def test_a_state_not_signed_with_the_apps_secret_is_refused(web, hubspot, oauth_config, redis):
    # Given states made with another secret, tampered with, or expired
    other = dataclasses.replace(oauth_config, client_secrets=("someone-elses-secret",))
    ours = oauth.issue_state(oauth_config)
    tampered = ours[:-2] + ("AA" if not ours.endswith("AA") else "BB")
    for state in (oauth.issue_state(other), tampered):
        # When a callback brings one
        response = web.get(f"/oauth/callback?code={hubspot.issue_code(1)}&state={state}")
        # Then it is refused before any call to HubSpot, and nothing is written to Redis
        assert response.status_code == 400 and "state" in response.get_json()["error"]
    assert hubspot.count(path_contains="/oauth/") == 0 and redis.dbsize() == 0
    assert oauth.consume_state(redis, oauth_config, ours, ttl=-1) is oauth.StateCheck.INVALID  # too old


def test_a_state_issued_before_a_secret_rotation_still_works(oauth_config, redis):
    # Given a state issued under the old secret, then the new secret put first (both configured)
    state = oauth.issue_state(oauth_config)
    secrets = ("the-new-secret", *oauth_config.client_secrets)
    rotated = dataclasses.replace(oauth_config, client_secrets=secrets)
    # Then the callback accepts it once
    assert oauth.consume_state(redis, rotated, state) is oauth.StateCheck.OK
    assert oauth.consume_state(redis, rotated, state) is oauth.StateCheck.USED


@pytest.mark.parametrize("headers", [{"Host": "attacker.example"}, {"X-Forwarded-Host": "attacker.example"},
                                     {"Host": "attacker.example", "X-Forwarded-Proto": "http"}])
def test_a_spoofed_host_does_not_change_the_redirect_uri(oauth_config, headers):
    # Given an OAuth app with only HUBHOOK_WEBHOOK_URL, and one with HUBHOOK_OAUTH_REDIRECT_URL too
    explicit = dataclasses.replace(oauth_config, oauth_redirect_url="https://install.example.com/cb")
    for config, expected in ((oauth_config, "https://hooks.example.com/oauth/callback"),
                             (explicit, "https://install.example.com/cb")):
        # When a client opens /oauth/install naming another host
        location = create_app(config).test_client().get("/oauth/install", headers=headers).headers["Location"]
        # Then HubSpot is told the configured address, never the client's
        assert parse_qs(urlparse(location).query)["redirect_uri"] == [expected]


def test_the_redirect_uri_keeps_the_webhook_urls_path_prefix(oauth_config):
    mounted = dataclasses.replace(oauth_config, webhook_url="https://example.com/hubhook/webhooks/hubspot")
    assert oauth.redirect_uri(mounted) == "https://example.com/hubhook/oauth/callback"
    custom = dataclasses.replace(oauth_config, webhook_url="https://example.com/hooks/in")
    assert oauth.redirect_uri(custom) == "https://example.com/oauth/callback"


def test_an_oauth_app_without_a_public_url_stops_at_start_saying_what_to_set(oauth_config, env, tmp_path):
    # Given an OAuth app with neither HUBHOOK_OAUTH_REDIRECT_URL nor HUBHOOK_WEBHOOK_URL
    bare = dataclasses.replace(oauth_config, webhook_url=None, oauth_redirect_url=None)
    # Then the receiver does not start (it used to take the redirect URI from the request's Host)
    with pytest.raises(ConfigError, match="HUBHOOK_OAUTH_REDIRECT_URL"):
        create_app(bare)
    # And `hubhook web` says so in one line, exit status 2
    run_env = {**env, "HUBSPOT_CLIENT_ID": CLIENT_ID, "HUBHOOK_WEBHOOK_URL": "",
               "HUBHOOK_OAUTH_REDIRECT_URL": "", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    result = subprocess.run([HUBHOOK, "web", "--port", "1"], env=run_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "HUBHOOK_OAUTH_REDIRECT_URL" in result.stderr and "Traceback" not in result.stderr


def test_the_callback_stores_the_portals_tokens_encrypted(web, hubspot, redis, oauth_config):
    result = install(web, hubspot, 4242)
    assert result == {"installed": True, "portal_id": 4242, "scopes": ["oauth", "crm.objects.contacts.read"]}
    tokens = TokenStore(redis, oauth_config).load(4242)
    stored = everything_in(redis)
    assert "hubhook:oauth:portal:4242" in stored
    assert tokens.access_token not in stored and tokens.refresh_token not in stored


@pytest.mark.parametrize("state", ["made-up", None])
def test_a_callback_with_an_unknown_state_is_refused(web, hubspot, state):
    query = f"code={hubspot.issue_code(1)}" + (f"&state={state}" if state else "")
    response = web.get(f"/oauth/callback?{query}")
    assert response.status_code == 400 and "state" in response.get_json()["error"]
    assert hubspot.count(path_contains="/oauth/") == 0


def test_a_state_works_once(web, hubspot):
    state = parse_qs(urlparse(web.get("/oauth/install").headers["Location"]).query)["state"][0]
    assert web.get(f"/oauth/callback?code={hubspot.issue_code(1)}&state={state}").status_code == 200
    assert web.get(f"/oauth/callback?code={hubspot.issue_code(1)}&state={state}").status_code == 400


def test_a_refused_code_is_a_400_that_says_to_start_again(web, hubspot):
    state = parse_qs(urlparse(web.get("/oauth/install").headers["Location"]).query)["state"][0]
    response = web.get(f"/oauth/callback?code=not-a-code&state={state}")
    assert response.status_code == 400 and "/oauth/install" in response.get_json()["error"]


def test_a_token_about_to_expire_is_refreshed_before_use(web, hubspot, redis, oauth_config):
    # Given portal 4242 installed 29 minutes ago: its access token expires in a minute
    install(web, hubspot, 4242)
    store = TokenStore(redis, oauth_config)
    old = store.load(4242)
    store.save(dataclasses.replace(old, expires_at=time.time() + 60, issued_at=time.time() - 1740))
    hubspot.add("contacts", 1, {"email": "a@x"}, portal_id=4242)
    seen = []
    router = Router()
    router.add(seen.append, "contact.creation", properties=["email"])
    deliver(oauth_config, redis, [make_event("contact.creation", 1, portal_id=4242)])
    hubspot.reset_calls()
    # When a worker enriches an event of that portal
    drain(oauth_config, router)
    # Then it refreshed first (one token call), and read with the new token
    token_call, read = hubspot.calls
    assert token_call.path == "/oauth/v3/token" and read.status == 200
    assert read.token_sha256 == sha(TokenStore(redis, oauth_config).load(4242).access_token) != sha(old.access_token)
    assert seen[0].record["properties"]["email"] == "a@x"


def test_two_processes_refreshing_at_once_make_one_refresh_call(web, hubspot, redis, oauth_config, env):
    # Given a token due for refresh and a HubSpot slow to answer the refresh
    install(web, hubspot, 4242)
    store = TokenStore(redis, oauth_config)
    store.save(dataclasses.replace(store.load(4242), expires_at=time.time() + 60, issued_at=time.time() - 1740))
    hubspot.reset_calls()
    hubspot.hang_next(1, 1.0, path_contains="/oauth/")
    script = ("import hashlib; from redis import Redis; from webhook_service.config import Config; "
              "from webhook_service.oauth.token_store import TokenStore; c = Config.from_env(); "
              "t = TokenStore(Redis.from_url(c.redis_url), c).token_for(4242); "
              "print(hashlib.sha256(t.encode()).hexdigest()[:12])")
    oauth_env = {**env, "HUBSPOT_CLIENT_ID": CLIENT_ID, "HUBSPOT_ACCESS_TOKEN": ""}
    # When two processes need the token at the same moment
    processes = [subprocess.Popen([sys.executable, "-c", script], env=oauth_env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in processes]
    # Then HubSpot saw one refresh, and both processes use its result
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert hubspot.count(path_contains="/oauth/") == 1
    fresh = sha(TokenStore(redis, oauth_config).load(4242).access_token)
    assert [out.strip() for out, _ in outputs] == [fresh, fresh]


def test_a_401_refreshes_the_token_once_and_retries(web, hubspot, redis, oauth_config):
    install(web, hubspot, 4242)
    hubspot.add("contacts", 1, portal_id=4242)
    seen = []
    router = Router()
    router.add(seen.append, "contact.creation")
    deliver(oauth_config, redis, [make_event("contact.creation", 1, portal_id=4242)])
    hubspot.reset_calls()
    hubspot.fail_next(1, 401, path_contains="/batch/read")
    drain(oauth_config, router)
    assert [(c.path.split("/")[-1], c.status) for c in hubspot.calls] == [("read", 401), ("token", 200), ("read", 200)]
    assert seen[0].record["id"] == "1"


def test_each_portal_is_read_with_its_own_token_and_unknown_portals_are_parked(web, hubspot, redis, oauth_config,
                                                                               caplog):
    # Given two installed portals, each with its own contact, and a third portal that never installed
    tokens = {hub: install(web, hubspot, hub) and TokenStore(redis, oauth_config).load(hub) for hub in (4242, 4343)}
    hubspot.add("contacts", 1, {"email": "a@4242"}, portal_id=4242)
    hubspot.add("contacts", 2, {"email": "b@4343"}, portal_id=4343)
    seen = []
    router = Router()
    router.add(seen.append, "contact.creation", properties=["email"])
    deliver(oauth_config, redis, [make_event("contact.creation", 1, portal_id=4242),
                                  make_event("contact.creation", 2, portal_id=4343),
                                  make_event("contact.creation", 3, portal_id=9999)])
    hubspot.reset_calls()
    # When the delivery is processed (with every log line captured)
    with caplog.at_level(logging.DEBUG):
        drain(oauth_config, router)
    # Then each portal's contact was read with that portal's token
    assert {(e.portal_id, e.record["properties"]["email"]) for e in seen} == {(4242, "a@4242"), (4343, "b@4343")}
    assert {(c.portal, c.token_sha256) for c in hubspot.calls} == {(h, sha(t.access_token)) for h, t in tokens.items()}
    # And the unknown portal's event is parked with a message saying what to do
    (letter,) = dead_letters.dead_letters(oauth_config)
    assert "portal 9999 has not installed the app" in letter.error and "/oauth/install" in letter.error
    # And no token is in any log line or Redis key, or readable in any Redis value
    secrets = [t.access_token for t in tokens.values()] + [t.refresh_token for t in tokens.values()]
    stored = everything_in(redis)
    assert not [s for s in secrets if s in caplog.text or s in stored]


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_worker_processes_route_portals_and_never_log_a_token(web, hubspot, redis, env, tmp_path):
    # Given two installed portals and worker processes of the OAuth app logging at DEBUG
    install(web, hubspot, 4242)
    install(web, hubspot, 4343)
    for i in range(1, 11):
        hub = 4242 if i % 2 else 4343
        hubspot.add("contacts", i, {"email": f"{i}@{hub}"}, portal_id=hub)
        deliver(web.application.config["HUBHOOK"], redis, [make_event("contact.creation", i, portal_id=hub)])
    workers = spawn_workers(2, {**env, "HUBSPOT_CLIENT_ID": CLIENT_ID, "HUBSPOT_ACCESS_TOKEN": "",
                                "HUBHOOK_HANDLERS": "tests.quota_handlers:router", "HUBHOOK_LOG_LEVEL": "DEBUG",
                                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")}, tmp_path)
    try:
        wait_until(lambda: len(ledger(redis)) >= 10, 30, "10 handler calls")
    finally:
        stop(workers)
    # Then each contact came from its own portal, and no token appears in the workers' output
    assert sorted((e["portal"], e["email"]) for e in ledger(redis)) == sorted(
        (4242 if i % 2 else 4343, f"{i}@{4242 if i % 2 else 4343}") for i in range(1, 11))
    output = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    store = TokenStore(redis, web.application.config["HUBHOOK"])
    assert "job done" in output
    assert not [s for hub in (4242, 4343) for s in (store.load(hub).access_token, store.load(hub).refresh_token)
                if s in output]


# -- token storage: bound to the portal, re-encrypted after a secret rotation, redacted --------------
def oauth_env(env, secrets: str) -> dict:
    return {**env, "HUBSPOT_CLIENT_ID": CLIENT_ID, "HUBSPOT_ACCESS_TOKEN": "",
            "HUBSPOT_CLIENT_SECRET": secrets}


def test_a_token_copied_to_another_portals_key_is_refused(web, hubspot, redis, oauth_config):
    # Given two installed portals, and portal 4242's stored blob copied over portal 4343's key
    install(web, hubspot, 4242)
    install(web, hubspot, 4343)
    stolen = TokenStore(redis, oauth_config).load(4242)
    redis.set("hubhook:oauth:portal:4343", redis.get("hubhook:oauth:portal:4242"))
    hubspot.add("contacts", 2, {"email": "b@4343"}, portal_id=4343)
    seen = []
    router = Router()
    router.add(seen.append, "contact.creation")
    deliver(oauth_config, redis, [make_event("contact.creation", 2, portal_id=4343)])
    hubspot.reset_calls()
    # When a worker processes an event of portal 4343
    drain(oauth_config, router)
    # Then portal 4242's token was never used for it: the work is parked, saying what to do
    assert sha(stolen.access_token) not in {c.token_sha256 for c in hubspot.calls} and not seen
    (letter,) = dead_letters.dead_letters(oauth_config)
    assert "belong to another portal" in letter.error and "/oauth/install" in letter.error


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_rekey_moves_every_token_to_the_newest_secret(web, hubspot, redis, oauth_config, env):
    # Given two portals whose tokens were stored under the old client secret
    before = {hub: install(web, hubspot, hub) and TokenStore(redis, oauth_config).load(hub)
              for hub in (4242, 4343)}
    old = oauth_config.client_secrets[0]
    # When the secret is rotated (newest first) and the operator runs `hubhook oauth rekey`
    rekey = subprocess.run([HUBHOOK, "oauth", "rekey"], env=oauth_env(env, f"new-client-secret,{old}"),
                           capture_output=True, text=True, timeout=60)
    again = subprocess.run([HUBHOOK, "oauth", "rekey"], env=oauth_env(env, f"new-client-secret,{old}"),
                           capture_output=True, text=True, timeout=60)
    # Then it reports each portal, and the tokens are readable with the new secret alone
    assert rekey.returncode == 0, rekey.stderr
    assert "portal 4242: re-encrypted" in rekey.stdout and "portal 4343: re-encrypted" in rekey.stdout
    assert "2 portal(s): 2 re-encrypted" in rekey.stdout
    assert "you can now remove the older ones" in rekey.stdout
    assert "2 already under the newest secret" in again.stdout
    newest = TokenStore(redis, dataclasses.replace(oauth_config, client_secrets=("new-client-secret",)))
    assert {hub: newest.load(hub) for hub in before} == before


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_rekey_without_the_old_secret_says_what_to_do(web, hubspot, redis, env):
    # Given a portal whose tokens were stored under a secret the operator already removed
    install(web, hubspot, 4242)
    # When rekey runs with only the new secret
    result = subprocess.run([HUBHOOK, "oauth", "rekey"], env=oauth_env(env, "new-client-secret"),
                            capture_output=True, text=True, timeout=60)
    # Then it fails, naming the portal and the way out, and prints no traceback
    assert result.returncode == 1 and "portal 4242: unreadable" in result.stdout
    assert "HUBSPOT_CLIENT_SECRET=new,old" in result.stdout and "`hubhook oauth rekey` again" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_a_portals_token_quoted_by_a_handler_is_redacted_before_it_is_stored(web, hubspot, redis, env,
                                                                            oauth_config, tmp_path):
    # Given an installed portal and a handler whose error quotes the token the worker holds for it
    install(web, hubspot, 4242)
    hubspot.add("contacts", 1, {"email": "a@4242"}, portal_id=4242)
    deliver(oauth_config, redis, [make_event("contact.creation", 1, portal_id=4242)])
    # When a `hubhook worker` process of the OAuth app runs the delivery
    log = tmp_path / "worker.log"
    worker = subprocess.run([HUBHOOK, "worker", "--burst"], capture_output=True, text=True, timeout=60,
                            env={**oauth_env(env, oauth_config.client_secrets[0]),
                                 "HUBHOOK_HANDLERS": "tests.leaky_handlers:oauth_router"})
    log.write_text(worker.stderr)
    # Then the handler failed, and neither its stored error nor anything else in Redis holds the token
    tokens = TokenStore(redis, oauth_config).load(4242)
    errors = [e["error"] for e in object_history.read(redis, "contact", 1) if e.get("error")]
    assert errors and all("refused token [redacted]" in e for e in errors), worker.stderr
    assert tokens.access_token not in everything_in(redis) and tokens.access_token not in worker.stderr
