"""HubSpot's API answers 429 for a while, then 5% 502s and 1% calls that hang.

The fake enforces a public app's real limit (110 requests per rolling 10 s) and hubhook is configured
with its default budget (``HUBSPOT_BURST_LIMIT=100``), so once the storm is over hubhook must stay
under the limit by itself: a 429 after the storm is hubhook's own doing. The storm lasts the
scenario's full 30 s.
Each delivery carries one event and batching is off (``HUBHOOK_COALESCE_MAX_EVENTS=1``), so every
event costs one API call and 5% / 1% of calls are whole numbers of real faults. A hang lasts 30 s,
longer than the job timeout (10 s here, set by the receiver on each job) and than the client's read
timeout: the job must be stopped at its timeout and retried, not hold a worker.
"""
import time

import pytest

from webhook_service.testing import FakeHubSpot

from ..conftest import SECRET, TOKEN
from .conftest import pending_work, quiescent
from .ledger import event_key
from .procs import wait_until
from .sender import Sender, contact_events
from .weather import ApiWeather, JobWatch

pytestmark = pytest.mark.resilience
EVENTS, STORM, JOB_TIMEOUT = 150, 30.0, 10


@pytest.fixture
def weather():
    return ApiWeather(storm_seconds=STORM, error_every=20, hang_every=100, hang_seconds=30.0)


@pytest.fixture
def hubspot(weather):
    """The fake HubSpot with a public app's 110/10 s limit and the weather in front of it."""
    fake = FakeHubSpot(tokens={TOKEN}, burst_limit=(110, 10.0))
    weather.install(fake)
    with fake:
        yield fake
        weather.release()


def test_a_429_storm_then_502s_and_hangs_lose_nothing_and_stick_no_worker(stack, stack_client, ledger, contacts,
                                                                           hubspot, weather):
    # Given two workers, and HubSpot answering every API call with 429 for the next 20 s
    contacts(EVENTS)
    web = stack.web(HUBHOOK_JOB_TIMEOUT=str(JOB_TIMEOUT))
    stack.workers(2, HUBSPOT_BURST_LIMIT="100", HUBHOOK_COALESCE_MAX_EVENTS="1")
    watch = JobWatch(stack_client)
    weather.start_storm()
    events = contact_events(EVENTS)
    keys = {event_key(e) for e in events}

    # When 150 one-event deliveries arrive at the start of the storm
    sender = Sender(web.url, SECRET).send([[e] for e in events], timeout=60)
    assert not sender.errors and not sender.unacked()

    # Then every event is eventually handled with its record fetched from HubSpot
    try:
        wait_until(lambda: ledger.has_all(keys) and quiescent(stack_client), 180, "every event to be enriched")
    finally:
        watch.stop()
        calls = hubspot.calls
        storm = [c for c in calls if c.at < weather.storm_ended]
        after = [c for c in calls if c.at >= weather.storm_ended]
        late_429 = sum(c.status == 429 for c in after)
        print(f"\n{len(storm)} calls during the {STORM:.0f} s storm (all 429); after it {len(after)} calls, "
              f"{late_429} of them 429, weather {weather.counts}; done {time.time() - weather.storm_ended:.1f} s "
              f"after the storm; longest job {watch.longest():.1f} s; pending {pending_work(stack_client)}")
    assert set(ledger.calls()) == keys and not ledger.unenriched()
    # and the faults really happened: the storm, 5% 502s and at least one hang
    assert weather.counts["429"] == len(storm) > 0 and weather.counts["502"] >= 5 and weather.counts["hang"] >= 1
    # and after the storm hubhook kept itself under HubSpot's limit: 429s at most 0.1% of calls
    assert late_429 <= 0.001 * len(after)
    # and during it hubhook backed off instead of hammering: at most a few probes per 10 s window
    assert len(storm) <= 4 * (STORM / 10 + 1), f"{len(storm)} calls during a {STORM} s storm"
    # and no worker stayed on one job past the job timeout, although a call hung for 30 s
    assert watch.longest() <= JOB_TIMEOUT + 2
