"""Redis Cluster: with RQ_KEY_PREFIX holding a hash tag, every key hubhook and RQ write lands in one slot.

The pipeline tests run a second time on a real three-master cluster in ``make test``
(``HUBHOOK_TEST_REDIS=cluster RQ_KEY_PREFIX='{hubhook}:rq'``, see ``tests/conftest.py``); the test here that
reads every node's keys runs only then. The configuration checks run in every pass.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
from redis import Redis
from redis.crc import key_slot

from webhook_service import Router, keys
from webhook_service.config import Config
from webhook_service.connection import cluster_nodes
from webhook_service.errors import ConfigError
from webhook_service.receiver.app import create_app
from webhook_service.testing import make_event, signed_delivery

from .conftest import ON_CLUSTER, SECRET, drain


def test_a_cluster_url_without_a_hash_tag_in_rq_key_prefix_is_refused_naming_the_fix():
    # Given a Redis Cluster URL and RQ's default prefix, which has no hash tag
    # When the configuration is read
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"REDIS_URL": "redis+cluster://10.0.0.1:6379,10.0.0.2:6379", "RQ_KEY_PREFIX": "rq"})
    # Then it names the variable and a value that works
    assert "RQ_KEY_PREFIX='{hubhook}:rq'" in str(refused.value)


def test_cluster_urls_name_their_nodes_and_bad_ones_are_refused():
    # Given cluster URLs, one well-formed and two not
    # Then the nodes are read, and the malformed ones raise ValueError
    assert cluster_nodes("redis+cluster://a:7000,b:7001/") == (("a", 7000), ("b", 7001))
    for bad in ("redis+cluster://a/", "redis+cluster://a:7000/3"):
        with pytest.raises(ValueError):
            cluster_nodes(bad)


def test_the_hash_tag_is_the_text_of_the_first_non_empty_braces():
    assert keys.hash_tag("{hubhook}:rq") == "hubhook"
    assert keys.hash_tag("rq") is None and keys.hash_tag("{}x{a}") == "a"


@pytest.mark.skipif(not ON_CLUSTER, reason="runs in make test's cluster pass (HUBHOOK_TEST_REDIS=cluster)")
def test_every_key_hubhook_and_rq_write_is_in_one_slot_of_the_cluster(config, redis_server, redis):
    # Given a receiver and a worker on a three-master Redis Cluster
    calls: list[str] = []
    router = Router()
    router.add(lambda event: calls.append(event.object_id), "contact.*", name="count")
    client = create_app(replace(config, history_ttl=3600)).test_client()
    # When deliveries are received, deduplicated and processed
    for object_id in (1, 2, 3):
        body, headers = signed_delivery([make_event("contact.creation", object_id)], SECRET, config.webhook_url)
        assert client.post("/webhooks/hubspot", data=body, headers=headers).status_code == 200
    drain(config, router)
    # Then the handler ran for each, and every key on every node shares the hash tag's one slot
    assert sorted(calls) == ["1", "2", "3"]
    found = []
    for node in redis_server.nodes:
        found += [(node.port, key) for key in Redis(port=node.port).scan_iter(count=1000)]
    assert {key_slot(key) for _, key in found} == {key_slot(b"{hubhook}")}, found
    assert len({port for port, _ in found}) == 1
    assert any(key.startswith(b"{hubhook}:rq:") for _, key in found)
    assert any(key.startswith(b"{hubhook}:hubhook:") for _, key in found)
