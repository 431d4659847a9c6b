"""Burst: N meetings changed at once in Outlook, each change notified 3 times — Graph reads per change.

The real bridge (processes: `serve` + workers on PostgreSQL + Redis, or the embedded default) runs against the
simulated tenant and booking system. The same burst is run twice in one go: with notification coalescing off
(the baseline: one read per notification) and on (the product's default). The Graph simulator counts every read
and the highest number of concurrent requests it saw per mailbox.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from simulators.processes import run_bridge, wait_for
from simulators.sandbox import Sandbox

PARIS = ZoneInfo("Europe/Paris")
PG_ADMIN = os.environ.get("ROOMBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("ROOMBRIDGE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def rooms(n: int) -> list[dict]:
    return [dict(email=f"salle-{i:02d}@contoso.com", display_name=f"Salle {i:02d}", capacity=8,
                 time_zone="Romance Standard Time") for i in range(n)]


def run_once(args: argparse.Namespace, product: bool, workdir: Path) -> dict[str, float]:
    """`product`: RoomBridge as shipped; otherwise the naive baseline (one read per notification, no mailbox limit)."""
    database, drop = _database(args.stack, workdir)
    try:
        with Sandbox.start(rooms=rooms(args.rooms)) as sb:
            with run_bridge(sb, workdir, database, REDIS if args.stack == "redis" else None, workers=args.workers,
                            extra_env={"HINT_COALESCE_MS": "500" if product else "0",
                                       "GRAPH_MAILBOX_CONCURRENCY": "4" if product else "0",
                                       "WORKER_THREADS": str(args.threads),
                                       "REDIS_NAMESPACE": f"rbbench-{uuid.uuid4().hex[:8]}"}) as bridge:
                r = bridge.api("POST", "/api/integrations", json=sb.integration(ignore_tags=[]))
                r.raise_for_status()
                iid = r.json()["id"]
                wait_for(lambda: len(bridge.api("GET", f"/api/integrations/{iid}/subscriptions").json()["items"])
                         == args.rooms, 120, "subscriptions")
                day = (datetime.now(PARIS) + timedelta(days=2)).date()
                meetings = []
                for i in range(args.meetings):
                    start = datetime(day.year, day.month, day.day, 7 + (i // args.rooms) % 12, 0, tzinfo=PARIS) \
                        + timedelta(days=i // (args.rooms * 12))
                    meetings.append(sb.graph.create_meeting("alice@contoso.com", f"M{i}", start,
                                                            start + timedelta(minutes=30),
                                                            rooms=[f"salle-{i % args.rooms:02d}@contoso.com"]))
                wait_for(lambda: len(sb.booking.loans) == args.meetings, 300, "every loan", interval=0.5)
                sb.settle(2.0, timeout=300)
                sb.graph.latency = args.latency  # Exchange is not instant: requests overlap, as they do for real
                sb.graph.set_delivery_senders(8)  # and Graph delivers notifications concurrently
                sb.graph.stats.reset()
                sb.booking.stats.reset()
                sb.graph.delivery.duplicates = 3
                moved = {m["iCalUId"] for m in meetings}
                t0 = time.monotonic()
                for m in meetings:
                    start = datetime.fromisoformat(m["start"]["dateTime"][:19]).replace(tzinfo=ZoneInfo("UTC"))
                    sb.graph.update_event("alice@contoso.com", m["id"], start=start + timedelta(minutes=15),
                                          end=start + timedelta(minutes=45))

                def all_moved() -> bool:
                    return sum(1 for loan in sb.booking.loans.values()
                               if loan.origin and loan.origin.ref in moved and loan.start.minute in (15, 45)) \
                        == args.meetings

                wait_for(all_moved, 600, "every loan to move", interval=0.2)
                elapsed = time.monotonic() - t0
                sb.settle(2.0, timeout=300)
                stats = sb.graph.stats
                reads = sum(stats.event_reads.values())
                return {
                    "changes": args.meetings,
                    "notifications": stats.notifications_delivered,
                    "graph_reads": reads,
                    "reads_per_change": reads / args.meetings,
                    "max_concurrent_per_mailbox": max(stats.max_in_flight.values(), default=0),
                    "throttled_429": stats.throttled,
                    "loan_patches": sb.booking.stats.loans_patched,
                    "seconds_to_converge": elapsed,
                }
    finally:
        drop()


def _database(stack: str, workdir: Path):
    if stack == "embedded":
        return f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}", lambda: None
    name = f"rb_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", drop


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench burst", description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--stack", choices=["redis", "embedded"], default="redis",
                        help="redis: PostgreSQL + Redis with worker processes (default); embedded: SQLite, one process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the Graph simulator takes per request")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="roombridge-bench-"))
    print(f"burst: {args.meetings} meetings on {args.rooms} rooms, each change notified 3 times; stack={args.stack}"
          + (f", {args.workers} worker processes × {args.threads} threads" if args.stack == "redis" else "")
          + f"; Graph latency {args.latency * 1000:.0f} ms")
    print("baseline = a naive bridge: one Graph read per notification, no per-mailbox limit "
          "(HINT_COALESCE_MS=0, GRAPH_MAILBOX_CONCURRENCY=0)")
    baseline = run_once(args, False, workdir)
    product = run_once(args, True, workdir)
    print(f"{'':<28}{'naive baseline':>26}{'RoomBridge':>26}")
    for key in baseline:
        b, p = baseline[key], product[key]
        fmt = "{:>26.2f}" if isinstance(b, float) else "{:>26}"
        print(f"{key:<28}" + fmt.format(b) + fmt.format(p))
    print(f"Graph reads per change: {product['reads_per_change']:.2f} "
          f"(ratio to baseline {product['reads_per_change'] / baseline['reads_per_change']:.2f}); "
          f"max concurrent requests per mailbox: {product['max_concurrent_per_mailbox']} (limit 4)")
    ok = product["reads_per_change"] <= 1.1 and product["max_concurrent_per_mailbox"] <= 4
    print("target (≤ 1.1 reads per change, ≤ 4 concurrent per mailbox):", "met" if ok else "NOT met")
    return 0 if ok else 1
