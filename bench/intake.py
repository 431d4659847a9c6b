"""Intake: valid, accepted `POST /graph/notifications` per second against a bare Starlette route answering 202.

The real bridge (`roombridge serve`; on the Redis stack with one `roombridge worker`) runs with one integration and
one subscribed room of the Graph simulator. Each request is one notification Graph would send: the subscription's id
and clientState, an event of that room, its `@odata.etag` — so it is validated and accepted (a job is enqueued for
the first one; the rest repeat a change a job has read, and are coalesced as Exchange's duplicates are). The baseline
is a bare Starlette app with one route reading the body and answering 202, served by uvicorn with the same settings
as `roombridge serve`. Both run at once; the load generator (its own process) alternates between them over several
rounds and the medians are compared.

Then a fixed 500 requests/s for `--rate-seconds`, alternating the same way: ack latency p50 / p99 measured from each
request's scheduled time (a server that falls behind shows a growing latency: the per-second medians are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.burst import REDIS, _database, rooms
from bench.workers import Profiler
from simulators.processes import run_bridge, wait_for
from simulators.sandbox import Sandbox
from simulators.server import free_port


def _bare_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.bare", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(pid: int, url: str, body: Path, *args: str) -> dict:
    """A load generator run, with the server's CPU per request (µs): on a busy machine, less noisy than req/s."""
    before = _cpu_s(pid)
    got = _loadgen(url, body, *args)
    got["cpu_us"] = (_cpu_s(pid) - before) / max(1, got["requests"]) * 1e6
    return got


def _loadgen(url: str, body: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.loadgen", url, str(body), *args],
                         capture_output=True, check=True, timeout=600)
    return json.loads(out.stdout)


def _notification(sb: Sandbox, bridge_api) -> bytes:
    [sub] = sb.graph.subscriptions.values()
    mailbox = sub["resource"].split("/")[1] if "/" in sub["resource"] else "salle-00@contoso.com"
    item = {
        "subscriptionId": sub["id"],
        "subscriptionExpirationDateTime": sub["expirationDateTime"],
        "changeType": "updated",
        "clientState": sub["clientState"],
        "resource": f"Users/{mailbox}/Events/bench-event-1",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": f"Users/{mailbox}/Events/bench-event-1",
                         "@odata.etag": 'W/"bench-1"', "id": "bench-event-1"},
        "tenantId": sb.graph.tenant_id if hasattr(sb.graph, "tenant_id") else "",
    }
    return json.dumps({"value": [item]}).encode()


def run_stack(args: argparse.Namespace, stack: str, workdir: Path) -> dict[str, float]:
    database, drop = _database(stack, workdir)
    port = free_port()
    bare = _bare_server(port, workdir / f"bare-{stack}.log")
    try:
        with Sandbox.start(rooms=rooms(1)) as sb:
            with run_bridge(sb, workdir, database, REDIS if stack == "redis" else None, workers=1,
                            extra_env={"REDIS_NAMESPACE": f"rbbench-{uuid.uuid4().hex[:8]}"}) as bridge:
                r = bridge.api("POST", "/api/integrations", json=sb.integration(ignore_tags=[]))
                r.raise_for_status()
                iid = r.json()["id"]
                wait_for(lambda: len(bridge.api("GET", f"/api/integrations/{iid}/subscriptions").json()["items"])
                         == 1, 120, "the subscription")
                sb.settle(1.0, timeout=120)
                body = workdir / f"notification-{stack}.json"
                body.write_bytes(_notification(sb, bridge.api))
                bare_url = f"http://127.0.0.1:{port}/graph/notifications"
                wait_for(lambda: httpx.post(bare_url, content=b"{}").status_code == 202, 60, "the bare route")
                bridge_url = f"{bridge.base_url}/graph/notifications"
                first = httpx.post(bridge_url, content=body.read_bytes())
                assert first.status_code == 202, first.text
                accepted_before = _accepted(bridge.base_url)
                b_rps, r_rps, b_lat, r_lat, b_cpu, r_cpu = [], [], [], [], [], []
                serve = bridge.processes[0].pid
                profiler = Profiler(args.profile, args.profile_mode)
                idle = {name: _cpu_s(pid) for name, pid in (("bare", bare.pid), ("serve", serve))}
                time.sleep(2.0)
                print(f"  {stack} idle, CPU ms per second: bare {(_cpu_s(bare.pid) - idle['bare']) * 500:.1f},"
                      f" RoomBridge serve {(_cpu_s(serve) - idle['serve']) * 500:.1f}", flush=True)
                for i in range(args.rounds):
                    got = _measured(bare.pid, bare_url, body, "--conns", str(args.conns), "--seconds",
                                    str(args.seconds))
                    b_rps.append(got["rps"])
                    b_cpu.append(got["cpu_us"])
                    profiler.start(f"{stack}-round{i + 1}", {"serve": serve})
                    try:
                        got = _measured(serve, bridge_url, body, "--conns", str(args.conns), "--seconds",
                                        str(args.seconds))
                    finally:
                        profiler.stop()
                    assert set(got["statuses"]) == {"202"}, got
                    r_rps.append(got["rps"])
                    r_cpu.append(got["cpu_us"])
                    print(f"  {stack} round {i + 1}: bare {b_rps[-1]:,.0f} req/s, RoomBridge {r_rps[-1]:,.0f} req/s"
                          f" (ratio {r_rps[-1] / b_rps[-1]:.2f}); server CPU per request: bare {b_cpu[-1]:.0f} µs,"
                          f" RoomBridge {r_cpu[-1]:.0f} µs", flush=True)
                for i in range(args.rounds):
                    b_lat.append(_loadgen(bare_url, body, "--mode", "open", "--rate", str(args.rate), "--seconds",
                                          str(args.rate_seconds)))
                    got = _loadgen(bridge_url, body, "--mode", "open", "--rate", str(args.rate), "--seconds",
                                   str(args.rate_seconds))
                    r_lat.append(got)
                    print(f"  {stack} {args.rate:.0f} req/s round {i + 1}: bare p50 {b_lat[-1]['p50_ms']:.1f} ms"
                          f" p99 {b_lat[-1]['p99_ms']:.1f} ms; RoomBridge p50 {got['p50_ms']:.1f} ms"
                          f" p99 {got['p99_ms']:.1f} ms max {got['max_ms']:.0f} ms; per-second p50 (ms)"
                          f" {got['p50_ms_per_second']}; statuses {got['statuses']}", flush=True)
                accepted = _accepted(bridge.base_url) - accepted_before
                return {
                    "bare_rps": statistics.median(b_rps), "bridge_rps": statistics.median(r_rps),
                    "ratio": statistics.median(r / b for r, b in zip(r_rps, b_rps, strict=True)),
                    "bare_p50_ms": statistics.median(x["p50_ms"] for x in b_lat),
                    "bare_p99_ms": statistics.median(x["p99_ms"] for x in b_lat),
                    "bridge_p50_ms": statistics.median(x["p50_ms"] for x in r_lat),
                    "bridge_p99_ms": statistics.median(x["p99_ms"] for x in r_lat),
                    "bridge_last_second_p50_ms": statistics.median(x["p50_ms_per_second"][-1] for x in r_lat),
                    "accepted_items": accepted,
                    "bare_cpu_us": statistics.median(b_cpu), "bridge_cpu_us": statistics.median(r_cpu),
                    "cpu_ratio": statistics.median(b / r for r, b in zip(r_cpu, b_cpu, strict=True)),
                }
    finally:
        bare.terminate()
        bare.wait(timeout=15)
        drop()


def _accepted(base_url: str) -> float:
    """accepted change notifications, from the bridge's /metrics (proves every request was validated and accepted)"""
    text = httpx.get(f"{base_url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("roombridge_notifications_total") and 'kind="change"' in line and "accepted" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench intake", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=["embedded", "redis", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="per throughput measurement")
    parser.add_argument("--conns", type=int, default=32, help="keep-alive connections of the load generator")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--rate-seconds", type=float, default=8.0)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy samples `roombridge serve` during each RoomBridge throughput round: collapsed"
                             " stacks DIR/<stack>-round<N>-serve.txt")
    parser.add_argument("--profile-mode", choices=["cpu", "wall"], default="cpu",
                        help="with --profile: cpu (the thread holding the GIL) or wall (every thread)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="roombridge-bench-"))
    print(f"intake: {args.rounds} rounds of {args.seconds:.0f} s, {args.conns} connections, bare route and RoomBridge"
          f" alternating; then {args.rate:.0f} req/s for {args.rate_seconds:.0f} s, alternating")
    results = {}
    for stack in (["embedded", "redis"] if args.stack == "both" else [args.stack]):
        t0 = time.monotonic()
        results[stack] = run_stack(args, stack, workdir)
        print(f"  ({stack}: {time.monotonic() - t0:.0f} s)")
    ok = True
    for stack, r in results.items():
        print(f"{stack:<9} bare {r['bare_rps']:>8,.0f} req/s   RoomBridge {r['bridge_rps']:>8,.0f} req/s   "
              f"ratio (median of rounds) {r['ratio']:.2f}   [target ≥ 0.5]")
        print(f"{'':<9} at {args.rate:.0f} req/s: bare p50 {r['bare_p50_ms']:.1f} / p99 {r['bare_p99_ms']:.1f} ms;"
              f" RoomBridge p50 {r['bridge_p50_ms']:.1f} / p99 {r['bridge_p99_ms']:.1f} ms, last second p50"
              f" {r['bridge_last_second_p50_ms']:.1f} ms   [target p99 ≤ 20 ms on redis; no growing backlog]")
        print(f"{'':<9} server CPU per request: bare {r['bare_cpu_us']:.0f} µs, RoomBridge {r['bridge_cpu_us']:.0f} µs"
              f" (serve process only), bare/RoomBridge {r['cpu_ratio']:.2f}")
        print(f"{'':<9} notifications accepted by the bridge during the run: {r['accepted_items']:,.0f}")
        ok = ok and r["ratio"] >= 0.5 and (stack != "redis" or r["bridge_p99_ms"] <= 20)
    print("targets:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
