#!/usr/bin/env python3
"""Protobuf request bodies: pod creates/s with protobuf bodies beside JSON bodies, same run.

Issue 14's figure: the pod create rate when clients send
`application/vnd.kubernetes.protobuf` bodies (kubectl 1.32+'s typed clients),
as a ratio to the rate with `application/json` bodies of the same pod,
measured against the same real `pocketkube apiserver` process (SQLite, as in
bench/apiserver_bench.py) in the same run. Target: protobuf/JSON >= 0.9 at
every connection count. The JSON side is the baseline.

What is measured:

* creates/s: Debian's `wrk` POSTs the benchmark pod (bench/common.py
  pod_body, encoded with api.protobuf.encode, `k8s\\0` envelope, ~280 bytes;
  or as compact JSON, ~520 bytes) to /api/v1/namespaces/default/pods at 1
  and 32 connections. Both bodies carry a fixed-width 16-character name
  placeholder (protobuf fields are length-prefixed, so the name must keep its
  length); the Lua script splits the body around it once and builds each
  request as head .. name .. tail with a unique same-width name, so both
  encodings cost the load generator the same. The protobuf body is embedded
  in the Lua script with \\ddd escapes. Rounds are interleaved (each round
  runs both encodings at both connection counts, the encoding that goes
  first alternating round to round) after an uncounted warm-up of each, and
  the medians over rounds are reported with their ratio protobuf/JSON per
  connection count. Every non-2xx answer is counted (it must be 0), and one
  pod of each encoding is read back and compared.
* decode cost: in-process, the median microseconds per body of
  api.protobuf.decode (as the server calls it, collecting dropped-field
  warnings) and of the server's JSON decode (apiserver.wire.decode_json) on
  the same pod, over many batches of iterations, and their ratio.

Usage: python3 bench/protobuf_bench.py [--rounds 5] [--duration 4] [--conns 1,32]
(needs `wrk`: apt-get install wrk). Prints progress on stderr and one JSON
line on stdout.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time

import httpx

from apiserver_bench import ROOT, WRK_THREAD_IDS, Server, wrk_run
from common import log, pod_body

sys.path.insert(0, ROOT)

import api.protobuf as pb  # noqa: E402
from apiserver import wire  # noqa: E402

PLACEHOLDER = "x" * 16
CTYPES = {"json": "application/json", "protobuf": "application/vnd.kubernetes.protobuf"}
TARGET = 0.9

# Names are PREFIX (5 chars) .. "-" .. thread id (1 digit) .. "-" .. counter (8 digits): 16 chars.
WRK_POST = WRK_THREAD_IDS + r"""
request = function()
  counter = counter + 1
  local name = string.format("%s-%d-%08d", PREFIX, thread_id, counter)
  return wrk.format("POST", "/api/v1/namespaces/default/pods", {["Content-Type"]=CTYPE}, HEAD .. name .. TAIL)
end
"""


def bodies() -> dict[str, bytes]:
    """The benchmark pod as a compact JSON body and as a protobuf body, named PLACEHOLDER."""
    pod = pod_body("default")
    pod["metadata"]["name"] = PLACEHOLDER
    out = {"json": json.dumps(pod, separators=(",", ":")).encode(), "protobuf": pb.encode(pod)}
    for enc, b in out.items():
        assert b.count(PLACEHOLDER.encode()) == 1, enc
    return out


def lua_bytes(b: bytes) -> str:
    """A Lua string literal of any bytes: printable ASCII as is, the rest as 3-digit \\ddd escapes."""
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\{c:03d}" for c in b) + '"'


def post_script(body: bytes, ctype: str, prefix: str) -> str:
    head, tail = body.split(PLACEHOLDER.encode())
    assert len(prefix) == 5
    return (f"PREFIX = {json.dumps(prefix)}\nCTYPE = {json.dumps(ctype)}\n"
            f"HEAD = {lua_bytes(head)}\nTAIL = {lua_bytes(tail)}\n" + WRK_POST)


def prefix(enc: str, rnd: int, conns: int) -> str:
    """5 characters naming the wrk run: encoding letter, round, connections (w = warm-up)."""
    return f"{enc[0]}{rnd % 100:02d}{conns % 100:02d}" if rnd >= 0 else f"{enc[0]}w{conns % 1000:03d}"


def decode_us(body: bytes, fn, batches: int, per_batch: int) -> float:
    """Median microseconds per call of fn(body), over batches of per_batch calls."""
    for _ in range(per_batch):
        fn(body)
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            fn(body)
        times.append((time.perf_counter() - t0) / per_batch * 1e6)
    return statistics.median(times)


def check_pods(url: str, names: dict[str, str]) -> None:
    """The pods one request of each encoding created are the same object (but for the name)."""
    got = {}
    with httpx.Client(base_url=url, timeout=30) as c:
        for enc, name in names.items():
            r = c.get(f"/api/v1/namespaces/default/pods/{name}")
            assert r.status_code == 200, (enc, name, r.status_code, r.text)
            got[enc] = r.json()
    meta = [{k: v for k, v in g["metadata"].items() if k in ("labels", "annotations", "namespace")} for g in got.values()]
    specs = [g["spec"] for g in got.values()]
    assert meta[0] == meta[1] and specs[0] == specs[1], "protobuf and JSON bodies created different pods"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    ap.add_argument("--conns", default="1,32", help="connection counts, comma-separated")
    ap.add_argument("--decode-batches", type=int, default=31)
    ap.add_argument("--decode-per-batch", type=int, default=2000)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk: apt-get install wrk")
    conns_list = [int(c) for c in args.conns.split(",")]
    bs = bodies()
    result = {"bench": "protobuf", "storage": "sqlite", "rounds": args.rounds, "duration_s": args.duration,
              "body_bytes": {enc: len(b) for enc, b in bs.items()}}

    log("decode cost per body (in-process) ...")
    pb_dec = decode_us(bs["protobuf"], lambda b: pb.decode(b, want_unknown=True), args.decode_batches, args.decode_per_batch)
    js_dec = decode_us(bs["json"], wire.decode_json, args.decode_batches, args.decode_per_batch)
    result["decode_us"] = {"protobuf": round(pb_dec, 2), "json": round(js_dec, 2)}
    result["decode_protobuf_vs_json"] = round(pb_dec / js_dec, 2)

    runs: dict[tuple[str, int], list[dict]] = {(enc, c): [] for enc in bs for c in conns_list}
    d = tempfile.mkdtemp(prefix="pk-pbbench-")
    srv = Server(d)
    try:
        log("warm-up (not counted) ...")
        for enc in bs:
            for c in conns_list:
                r = wrk_run(srv.url, c, 1, post_script(bs[enc], CTYPES[enc], prefix(enc, -1, c)))
                assert r["non2xx"] == 0, (enc, c, r)
        # wrk calls request() once before the run to see whether it is static, so the first name sent ends in 2
        check_pods(srv.url, {enc: f"{prefix(enc, -1, conns_list[0])}-0-00000002" for enc in bs})
        for rnd in range(args.rounds):
            order = list(bs) if rnd % 2 == 0 else list(reversed(list(bs)))
            for c in conns_list:
                for enc in order:
                    r = wrk_run(srv.url, c, args.duration, post_script(bs[enc], CTYPES[enc], prefix(enc, rnd, c)))
                    runs[(enc, c)].append(r)
                    log(f"round {rnd + 1}/{args.rounds} {c:>2} conn {enc:>8}: {r['rps']:8.1f} creates/s, non-2xx {r['non2xx']}")
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)

    for c in conns_list:
        med = {enc: statistics.median(r["rps"] for r in runs[(enc, c)]) for enc in bs}
        for enc in bs:
            rps = [round(r["rps"]) for r in runs[(enc, c)]]
            result[f"creates_per_s_{enc}_{c}conn"] = round(med[enc])
            result[f"creates_per_s_{enc}_{c}conn_runs"] = rps
            result[f"creates_non2xx_{enc}_{c}conn"] = sum(r["non2xx"] for r in runs[(enc, c)])
        result[f"ratio_protobuf_vs_json_{c}conn"] = round(med["protobuf"] / med["json"], 3)
        # per-round ratios show the spread of the pairing on a noisy machine
        result[f"ratio_protobuf_vs_json_{c}conn_rounds"] = [
            round(p["rps"] / j["rps"], 3) for p, j in zip(runs[("protobuf", c)], runs[("json", c)])]
    result["target"] = TARGET
    result["meets_target"] = all(result[f"ratio_protobuf_vs_json_{c}conn"] >= TARGET for c in conns_list) and \
        all(result[f"creates_non2xx_{enc}_{c}conn"] == 0 for enc in bs for c in conns_list)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
