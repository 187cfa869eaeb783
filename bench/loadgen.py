"""Load generation with wrk and pre-signed HubSpot deliveries.

Why wrk: it is C, so at these rates it takes a few percent of a core where a Python client would
take a whole one from the server it measures. Why pre-signed: wrk's Lua has no HMAC, so Python signs
every delivery (fresh timestamps, distinct eventIds so dedupe never short-circuits) into a file just
before the run, one delivery a line: ``timestamp<TAB>signature<TAB>body``. The Lua script reads that
file rather than embedding the bodies as Lua literals, which side-steps the long-string trap
(HubSpot bodies end in ``}]``, which closes a Lua ``[[...]]`` long string early).
When a run outlasts its file, wrk wraps around and the bench reports how many requests were repeats.
"""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from webhook_service.receiver.signature import sign

#: One classic contact.propertyChange event (~250 bytes), as HubSpot sends them.
EVENT = ('{"eventId":%d,"subscriptionId":1,"portalId":62515,"appId":54321,"occurredAt":%d,'
         '"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":%d,'
         '"propertyName":"lifecyclestage","propertyValue":"customer","changeSource":"CRM","sourceId":"userId:1"}')
_event_ids = itertools.count(int(time.time() * 1000) % 10**12 * 1000)

LUA = r"""
-- wrk script: cycle through pre-signed deliveries, one per line: timestamp TAB signature TAB body.
local counter, threads = 0, {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads, line_no = args[1], tonumber(args[2]), 0
  reqs, n, wraps = {}, 0, 0
  for line in io.lines(path) do
    if line_no % nthreads == tid then
      local ts, sig, body = string.match(line, "^(%d+)\t([^\t]+)\t(.+)$")
      reqs[#reqs + 1] = wrk.format("POST", nil, {["Content-Type"] = "application/json",
        ["X-HubSpot-Request-Timestamp"] = ts, ["X-HubSpot-Signature-v3"] = sig}, body)
    end
    line_no = line_no + 1
  end
  count = #reqs
end

function request()
  n = n + 1
  if n > #reqs then n, wraps = 1, wraps + 1 end
  return reqs[n]
end

function done(summary, latency, requests)
  local lines = 0
  for _, t in ipairs(threads) do lines = lines + t:get("count") end
  local e = summary.errors
  io.write(string.format('WRK-JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"timeouts":%d,"lines":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout, lines,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run; latencies in ms (wrk's histogram, with its coordinated-omission correction)."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    lines: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def repeats(self) -> int:
        """Requests beyond the file's distinct deliveries (dedupe short-circuits those)."""
        return max(0, self.requests - self.lines)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def delivery(events: int, object_ids: itertools.cycle, occurred_at: int) -> bytes:
    """One body of ``events`` distinct events in HubSpot's shape."""
    return ("[" + ",".join(EVENT % (next(_event_ids), occurred_at, next(object_ids)) for _ in range(events))
            + "]").encode()


def write_requests(path: Path, count: int, events: int, *, secret: str, signed_url: str,
                   objects: int = 1000) -> Path:
    """Sign ``count`` deliveries of ``events`` events each into ``path`` (timestamps: now)."""
    object_ids = itertools.cycle(range(1, objects + 1))
    now = int(time.time() * 1000)
    with path.open("w") as out:
        for _ in range(count):
            body = delivery(events, object_ids, now)
            signature = sign("v3", secret, body, method="POST", uri=signed_url, timestamp=now)
            out.write(f"{now}\t{signature}\t{body.decode()}\n")
    return path


def run_wrk(url: str, requests_file: Path, *, connections: int, seconds: float, threads: int = 1) -> WrkResult:
    """Closed-loop load: ``connections`` requests in flight for ``seconds``."""
    script = requests_file.with_suffix(".lua")
    script.write_text(LUA)
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s", "--timeout", "10s",
            "-s", str(script), url, "--", str(requests_file), str(threads)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("WRK-JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out[-2000:]}")
    data = json.loads(line[len("WRK-JSON "):])
    ms = {k: data[k] / 1000 for k in ("p50", "p90", "p99", "p999", "max")}
    return WrkResult(requests=data["requests"], seconds=data["duration_us"] / 1e6, non_2xx=data["non_2xx"],
                     socket_errors=data["socket_errors"], timeouts=data["timeouts"], lines=data["lines"], **ms)
