"""Workers: Outlook changes applied per second by 2 × `roombridge worker` against a no-op dramatiq actor.

RoomBridge: `serve` + 2 × `worker` (`--threads` each) on PostgreSQL + Redis, the Graph simulator with no added
latency. N meetings (already synced: one loan each) are moved at once in Outlook; the figure is N / the seconds from
the burst until every loan has moved (each change: notification → intake → job → Graph read → booking availability
→ loan PATCH → link saved). Baseline: the same number of messages, enqueued up front, drained by 2 worker processes of
a no-op actor (one Redis INCR) with the same threads (`bench/noop.py`), timed from the first message handled to the
last. The two alternate over `--rounds` rounds; medians are compared.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import redis

from bench.burst import PARIS, REDIS, _database, rooms
from simulators.processes import run_bridge, wait_for
from simulators.sandbox import Sandbox


def noop_round(n: int, threads: int, processes: int, workdir: Path) -> float:
    """messages per second of `processes` no-op workers draining `n` messages enqueued before they start"""
    from bench.noop import build

    namespace = f"rbnoop-{uuid.uuid4().hex[:8]}"
    broker, actor = build(REDIS, namespace)
    for i in range(n):
        actor.send(i)
    client = redis.Redis.from_url(REDIS)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.noop", "--redis", REDIS, "--namespace", namespace,
                               "--threads", str(threads)], stdout=(workdir / "noop.log").open("ab"),
                              stderr=subprocess.STDOUT) for _ in range(processes)]
    try:
        wait_for(lambda: int(client.get(f"{namespace}:done") or 0) >= n, 600, "the no-op messages", interval=0.05)
        first, last = float(client.get(f"{namespace}:first") or 0), float(client.get(f"{namespace}:last") or 0)
        return n / max(last - first, 1e-6)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        broker.close()
        client.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Profiler:
    """`--profile DIR`: py-spy (pip-installed into the venv) samples the bridge's processes and this one (the
    simulators) during each RoomBridge round, as collapsed stacks `DIR/<round>-<name>.txt`: `cpu`, the samples of
    the thread holding the GIL; `wall`, every thread, idle or not, named by its thread id."""

    def __init__(self, directory: Path | None, mode: str = "cpu") -> None:
        self.directory = directory
        self.mode = mode
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, label: str, pids: dict[str, int]) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        for name, pid in pids.items():
            out = self.directory / f"{label}-{name}.txt"
            command = [str(spy), "record", "--format", "raw", "--nonblocking", "--rate", "200", "-p", str(pid),
                       "-o", str(out), *(["--idle", "--threads"] if self.mode == "wall" else ["--gil"])]
            self._running.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for p in self._running:
            p.send_signal(signal.SIGINT)
        for p in self._running:
            p.wait(timeout=60)
        self._running.clear()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench workers", description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=400)
    parser.add_argument("--rooms", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noop-messages", type=int, default=0, help="default: 10 × meetings")
    parser.add_argument("--profile", type=Path, default=None,
                        help="a directory: py-spy samples of every process during the RoomBridge rounds")
    parser.add_argument("--profile-mode", choices=["cpu", "wall"], default="cpu",
                        help="with --profile: cpu (the thread holding the GIL) or wall (every thread, idle or not)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="roombridge-bench-"))
    noop_n = args.noop_messages or 10 * args.meetings
    print(f"workers: {args.meetings} meetings on {args.rooms} rooms moved at once, {args.workers} worker processes ×"
          f" {args.threads} threads, PostgreSQL + Redis, Graph without added latency; baseline: {noop_n} no-op"
          f" messages, same processes and threads; {args.rounds} rounds alternating")
    database, drop = _database("redis", workdir)
    profiler = Profiler(args.profile, args.profile_mode)
    bridge_rates: list[float] = []
    noop_rates: list[float] = []
    try:
        with Sandbox.start(rooms=rooms(args.rooms)) as sb:
            with run_bridge(sb, workdir, database, REDIS, workers=args.workers,
                            extra_env={"WORKER_THREADS": str(args.threads),
                                       "REDIS_NAMESPACE": f"rbbench-{uuid.uuid4().hex[:8]}"}) as bridge:
                r = bridge.api("POST", "/api/integrations", json=sb.integration(ignore_tags=[]))
                r.raise_for_status()
                iid = r.json()["id"]
                wait_for(lambda: len(bridge.api("GET", f"/api/integrations/{iid}/subscriptions").json()["items"])
                         == args.rooms, 180, "subscriptions")
                day = (datetime.now(PARIS) + timedelta(days=2)).date()
                meetings = []
                for i in range(args.meetings):
                    start = datetime(day.year, day.month, day.day, 7 + (i // args.rooms) % 12, 0, tzinfo=PARIS) \
                        + timedelta(days=i // (args.rooms * 12))
                    meetings.append(sb.graph.create_meeting("alice@contoso.com", f"M{i}", start,
                                                            start + timedelta(minutes=30),
                                                            rooms=[f"salle-{i % args.rooms:02d}@contoso.com"]))
                wait_for(lambda: len(sb.booking.loans) == args.meetings, 600, "every loan", interval=0.5)
                sb.settle(2.0, timeout=300)
                sb.graph.set_delivery_senders(8)
                ids = {m["iCalUId"] for m in meetings}
                for rnd in range(args.rounds):
                    noop_rates.append(noop_round(noop_n, args.threads, args.workers, workdir))
                    minute = 15 * ((rnd + 1) % 4)  # each round moves every meeting to another quarter

                    def moved(minute: int = minute) -> bool:
                        return sum(1 for loan in sb.booking.loans.values()
                                   if loan.origin and loan.origin.ref in ids
                                   and loan.start.astimezone(ZoneInfo("UTC")).minute == minute) == args.meetings

                    pids = {"bench": os.getpid(), "serve": bridge.processes[0].pid}
                    pids.update({f"worker{i}": p.pid for i, p in enumerate(bridge.processes[1:], 1)})
                    profiler.start(f"round{rnd + 1}", pids)
                    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    t0 = time.monotonic()
                    for m in meetings:
                        start = datetime.fromisoformat(m["start"]["dateTime"][:19]).replace(tzinfo=ZoneInfo("UTC"))
                        start = start.replace(minute=minute)
                        sb.graph.update_event("alice@contoso.com", m["id"], start=start,
                                              end=start + timedelta(minutes=30))
                    wait_for(moved, 600, "every loan to move", interval=0.05)
                    bridge_rates.append(args.meetings / (time.monotonic() - t0))
                    cpu = {name: (cpu_seconds(pid) - cpu0[name]) * 1000 / args.meetings for name, pid in pids.items()}
                    profiler.stop()
                    print(f"  round {rnd + 1}: no-op {noop_rates[-1]:,.0f} msg/s, RoomBridge"
                          f" {bridge_rates[-1]:,.1f} changes/s (ratio {bridge_rates[-1] / noop_rates[-1]:.3f});"
                          " CPU ms per change: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                          + f" (load {os.getloadavg()[0]:.1f})", flush=True)
                    sb.settle(1.0, timeout=300)
    finally:
        drop()
    ratio = statistics.median(b / n for b, n in zip(bridge_rates, noop_rates, strict=True))
    print(f"no-op actor {statistics.median(noop_rates):,.0f} msg/s   RoomBridge {statistics.median(bridge_rates):,.1f}"
          f" changes/s   ratio (median of rounds) {ratio:.3f}   [target ≥ 0.25]")
    print("target:", "met" if ratio >= 0.25 else "NOT met")
    return 0 if ratio >= 0.25 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
