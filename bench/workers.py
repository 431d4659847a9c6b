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
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import redis

from bench.burst import PARIS, REDIS, _database, rooms
from bench.profile_split import report
from simulators.processes import run_bridge, wait_for
from simulators.sandbox import Sandbox


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _comm_and_args(pid: int) -> tuple[str, str]:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "", ""
    return comm, args


class CpuMeter:
    """CPU seconds used over a span by groups of processes: the ones named (pid → name), the PostgreSQL backends of
    `database` (`postgres`), the PostgreSQL server's own processes (`pg-server`: postmaster, WAL writer, checkpointer,
    …) and `redis-server`. Sampled every 0.2 s, so backends that come and go within the span count up to their last
    sample. The backends of other databases (other people's tests on this shared server) are left out; the server's
    own processes and redis-server are shared with them: `background()` measures what they use while the bridge is
    idle, which `stop` takes off (pro rata) as `net`."""

    SHARED = ("pg-server", "redis")

    def __init__(self, named: dict[str, int], database: str) -> None:
        self.named = {pid: name for name, pid in named.items()}
        self.database = database
        self._group: dict[int, str | None] = {}
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.background_rate: dict[str, float] = {}

    def _classify(self, pid: int) -> str | None:
        if pid in self.named:
            return self.named[pid]
        comm, args = _comm_and_args(pid)
        if comm == "redis-server":
            return "redis"
        if comm == "postgres":
            if f" {self.database} " in args:
                return "postgres"
            if "(" in args or "[local]" in args:  # another database's backend
                return None
            return "pg-server"
        return None

    def _sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid not in self._group:
                self._group[pid] = self._classify(pid)
            if self._group[pid] is None:
                continue
            try:
                cpu = cpu_seconds(pid)
            except (OSError, IndexError, ValueError):
                continue
            self._first.setdefault(pid, cpu if self._t0 == 0.0 else 0.0)
            self._last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def start(self) -> None:
        self._first.clear()
        self._last.clear()
        self._t0 = 0.0
        self._sample()  # what every process had used before the span
        self._t0 = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> tuple[dict[str, float], float]:
        """CPU seconds per group (shared groups net of their background) and the span's seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        span = time.monotonic() - self._t0
        used: dict[str, float] = {}
        for pid, last in self._last.items():
            group = self._group.get(pid)
            if group is not None:
                used[group] = used.get(group, 0.0) + last - self._first.get(pid, 0.0)
        for group in self.SHARED:
            if group in used:
                used[group] = max(0.0, used[group] - self.background_rate.get(group, 0.0) * span)
        return used, span

    def background(self, seconds: float = 2.0) -> None:
        """What the shared groups use per second while nothing of the benchmark runs."""
        self.background_rate = {}
        self.start()
        time.sleep(seconds)
        used, span = self.stop()
        self.background_rate = {g: used.get(g, 0.0) / span for g in self.SHARED}


class Counts:
    """Per-round counters: Graph and booking requests (the simulators, in this process), the bridge's SQL
    statements and jobs (its /metrics, every process: PROMETHEUS_MULTIPROC_DIR), PostgreSQL transactions and rows of
    the benchmark's database (pg_stat_database) and Redis commands (INFO commandstats: server-wide, net of the rate
    seen while the bridge was idle)."""

    def __init__(self, sb: Sandbox, bridge: Any, database_url: str) -> None:
        self.sb, self.bridge = sb, bridge
        self.pg = psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        self.redis = redis.Redis.from_url(REDIS)
        self.redis_background = 0.0

    def _metrics(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for line in self.bridge.api("GET", "/metrics").text.splitlines():
            if line.startswith(("roombridge_sql_statements_total", "roombridge_jobs_total")):
                name, _, value = line.rpartition(" ")
                found[name] = found.get(name, 0.0) + float(value)
        return found

    def _pg(self) -> dict[str, float]:
        self.pg.execute("SELECT pg_stat_clear_snapshot()")
        row = self.pg.execute("SELECT xact_commit + xact_rollback, tup_returned, tup_fetched,"
                              " tup_inserted + tup_updated + tup_deleted, active_time FROM pg_stat_database"
                              " WHERE datname = current_database()").fetchone()
        assert row is not None
        return dict(zip(("transactions", "rows returned", "rows fetched", "rows written", "active ms"),
                        (float(v or 0) for v in row), strict=True))

    def _redis(self) -> float:
        return sum(self._redis_by_command().values())

    def _redis_by_command(self) -> dict[str, float]:
        stats = self.redis.info("commandstats")
        return {k.removeprefix("cmdstat_"): float(v["calls"]) for k, v in stats.items()}

    def snapshot(self) -> dict[str, float]:
        graph = self.sb.graph.stats
        snap = {"graph requests": float(sum(graph.requests.values())),
                "graph notifications": float(graph.notifications_delivered),
                "booking requests": float(self.sb.booking.stats.requests),
                "booking hooks": float(self.sb.booking.stats.hooks_sent),
                "_at": time.monotonic()}
        by_command = self._redis_by_command()
        snap["redis commands"] = sum(by_command.values())
        snap.update({f"_redis {k}": v for k, v in by_command.items()})
        snap.update(self._pg())
        snap.update(self._metrics())
        return snap

    def background(self, seconds: float = 2.0) -> None:
        before, t0 = self._redis(), time.monotonic()
        time.sleep(seconds)
        self.redis_background = (self._redis() - before) / (time.monotonic() - t0)

    def delta(self, before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
        """Per change (the benchmark's own snapshot commands are left out of Redis: ~1 per snapshot)."""
        span = after["_at"] - before["_at"]
        out = {k: (after.get(k, 0.0) - before.get(k, 0.0)) / n for k in after if not k.startswith("_")}
        out["redis commands"] = max(0.0, after["redis commands"] - before["redis commands"]
                                    - self.redis_background * span) / n
        by_command = {k.removeprefix("_redis "): (after[k] - before.get(k, 0.0)) / n
                      for k in after if k.startswith("_redis ")}
        top = sorted(by_command.items(), key=lambda kv: -kv[1])[:8]
        out.update({f"redis {k} (gross)": v for k, v in top if v >= 0.05})
        return out

    def close(self) -> None:
        self.pg.close()
        self.redis.close()


def noop_round(n: int, threads: int, processes: int, workdir: Path,
               meter: CpuMeter) -> tuple[float, dict[str, float]]:
    """messages per second of `processes` no-op workers draining `n` messages enqueued before they start, and the
    CPU milliseconds per message of the workers (from each one's first message on) and of redis-server"""
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
        wait_for(lambda: client.get(f"{namespace}:first") is not None, 600, "the first no-op message", interval=0.02)
        meter.start()
        wait_for(lambda: int(client.get(f"{namespace}:done") or 0) >= n, 600, "the no-op messages", interval=0.05)
        used, _span = meter.stop()
        workers = 0.0
        for p in procs:
            cpu0 = client.get(f"{namespace}:cpu0:{p.pid}")
            workers += cpu_seconds(p.pid) - float(cpu0 or 0.0)
        first, last = float(client.get(f"{namespace}:first") or 0), float(client.get(f"{namespace}:last") or 0)
        cpu = {"no-op workers": workers * 1000 / n, **{k: used.get(k, 0.0) * 1000 / n for k in ("redis",)}}
        return n / max(last - first, 1e-6), cpu
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        broker.close()
        client.close()


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
    floors: list[float] = []
    cpu_rounds: list[dict[str, float]] = []
    noop_cpu_rounds: list[dict[str, float]] = []
    count_rounds: list[dict[str, float]] = []
    prom = workdir / "prometheus"
    prom.mkdir()
    counts: Counts | None = None
    try:
        with Sandbox.start(rooms=rooms(args.rooms)) as sb:
            with run_bridge(sb, workdir, database, REDIS, workers=args.workers,
                            extra_env={"WORKER_THREADS": str(args.threads), "PROMETHEUS_MULTIPROC_DIR": str(prom),
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
                pids = {"bench": os.getpid(), "serve": bridge.processes[0].pid}
                pids.update({f"worker{i}": p.pid for i, p in enumerate(bridge.processes[1:], 1)})
                meter = CpuMeter(pids, database.rsplit("/", 1)[1])
                counts = Counts(sb, bridge, database)
                # This server runs with autovacuum off: without statistics the planner reads a link by the index on
                # its integration alone (every link of it) instead of the unique (integration, iCalUId) one. A
                # server as deployed (autovacuum on) has analysed tables this size long before: so do we.
                counts.pg.execute("ANALYZE")
                meter.background()
                for rnd in range(args.rounds):
                    rate, noop_cpu = noop_round(noop_n, args.threads, args.workers, workdir, meter)
                    noop_rates.append(rate)
                    noop_cpu_rounds.append(noop_cpu)
                    minute = 15 * ((rnd + 1) % 4)  # each round moves every meeting to another quarter

                    def moved(minute: int = minute) -> bool:
                        return sum(1 for loan in sb.booking.loans.values()
                                   if loan.origin and loan.origin.ref in ids
                                   and loan.start.astimezone(ZoneInfo("UTC")).minute == minute) == args.meetings

                    sb.settle(1.0, timeout=300)
                    meter.background()  # the shared servers' rate while the bridge is idle (others' load)
                    counts.background()
                    before = counts.snapshot()
                    profiler.start(f"round{rnd + 1}", pids)
                    meter.start()
                    t0 = time.monotonic()
                    for m in meetings:
                        start = datetime.fromisoformat(m["start"]["dateTime"][:19]).replace(tzinfo=ZoneInfo("UTC"))
                        start = start.replace(minute=minute)
                        sb.graph.update_event("alice@contoso.com", m["id"], start=start,
                                              end=start + timedelta(minutes=30))
                    wait_for(moved, 600, "every loan to move", interval=0.05)
                    bridge_rates.append(args.meetings / (time.monotonic() - t0))
                    used, _span = meter.stop()
                    profiler.stop()
                    cpu = {name: used.get(name, 0.0) * 1000 / args.meetings
                           for name in [*pids, "postgres", "pg-server", "redis"]}
                    cpu_rounds.append(cpu)
                    sb.settle(1.0, timeout=300)
                    time.sleep(PG_STATS_FLUSH_S)  # PostgreSQL publishes an idle backend's counts within 10 s
                    per_change = counts.delta(before, counts.snapshot(), args.meetings)
                    count_rounds.append(per_change)
                    floors.append(_report_round(rnd + 1, rate, noop_cpu, bridge_rates[-1], cpu, per_change,
                                                args.workers))
                    if args.profile is not None:
                        bridge_ms = sum(v for k, v in cpu.items() if k.startswith("worker"))
                        files = [args.profile / f"round{rnd + 1}-{k}.txt" for k in pids if k.startswith("worker")]
                        print(f"    where the workers' {bridge_ms:.1f} ms per change go (py-spy, GIL samples):")
                        print(report(files, bridge_ms), flush=True)
    finally:
        if counts is not None:
            counts.close()
        drop()
    ratio = statistics.median(b / n for b, n in zip(bridge_rates, noop_rates, strict=True))
    print(f"no-op actor {statistics.median(noop_rates):,.0f} msg/s   RoomBridge {statistics.median(bridge_rates):,.1f}"
          f" changes/s   ratio (median of rounds) {ratio:.3f}   [target ≥ 0.25]")
    med = {k: statistics.median(c[k] for c in cpu_rounds) for k in cpu_rounds[0]}
    print("median CPU ms per change: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    noop_med = {k: statistics.median(c[k] for c in noop_cpu_rounds) for k in noop_cpu_rounds[0]}
    print("median no-op CPU ms per message: " + ", ".join(f"{k} {v:.3f}" for k, v in noop_med.items()))
    # A count seen in some rounds only (e.g. a Redis command of another suite's) is 0 in the others.
    counts_med = {k: statistics.median(c.get(k, 0.0) for c in count_rounds) for k in count_rounds[0]}
    print("median per change: " + ", ".join(f"{k} {v:.2f}" for k, v in counts_med.items()))
    print(f"floor (the bridge's own CPU at zero; median of rounds): ratio ≤ {statistics.median(floors):.3f}")
    print("target:", "met" if ratio >= 0.25 else "NOT met")
    return 0 if ratio >= 0.25 else 1


PG_STATS_FLUSH_S = 11.0
CORES = 2


def _report_round(rnd: int, noop_rate: float, noop_cpu: dict[str, float], rate: float, cpu: dict[str, float],
                  per_change: dict[str, float], workers: int) -> float:
    """Print one round; the best ratio this setup allows if the bridge's own processes cost nothing."""
    bridge = cpu["serve"] + sum(cpu.get(f"worker{i}", 0.0) for i in range(1, workers + 1))
    servers = cpu["postgres"] + cpu["pg-server"] + cpu["redis"]
    other = cpu["bench"] + servers
    floor_rate = CORES * 1000 / max(other, 1e-6)
    servers_rate = CORES * 1000 / max(servers, 1e-6)
    noop_total = sum(noop_cpu.values())
    print(f"  round {rnd}: no-op {noop_rate:,.0f} msg/s, RoomBridge {rate:,.1f} changes/s"
          f" (ratio {rate / noop_rate:.3f}) (load {os.getloadavg()[0]:.1f})", flush=True)
    print("    CPU ms per change: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
          + f"; the bridge (serve + workers) {bridge:.2f}, the rest {other:.2f}, all {bridge + other:.2f}")
    print("    no-op CPU ms per message: " + ", ".join(f"{k} {v:.3f}" for k, v in noop_cpu.items())
          + f"; all {noop_total:.3f}")
    print(f"    floor: with the bridge's own CPU at zero, {CORES} cores / {other:.2f} ms (simulators + PostgreSQL +"
          f" Redis) = {floor_rate:,.0f} changes/s = ratio ≤ {floor_rate / noop_rate:.3f}; without the simulators"
          f" (PostgreSQL + Redis only) {servers_rate:,.0f}/s = ratio ≤ {servers_rate / noop_rate:.3f}; CPU per unit,"
          f" no-op / RoomBridge: {noop_total / max(bridge + other, 1e-6):.4f}")
    print("    per change: " + ", ".join(f"{k} {v:.2f}" for k, v in per_change.items()), flush=True)
    return floor_rate / noop_rate


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
