"""Latency: a change on one side → seen on the other, p50 / p95, both directions, 20 ms per simulated call.

Two bridges run side by side, each with its own simulated tenant and booking system (20 ms added to every Graph and
every Booking API request; every Graph notification delivered 3 times, as Exchange often does): RoomBridge as shipped,
and the baseline, the same code with coalescing off (`HINT_COALESCE_MS=0`: every notification and hook is a job at
once). Changes alternate between them, one at a time: a meeting moved in Outlook (timed until its loan has moved) and
a loan moved in the booking system (timed until the organiser's event has moved). The Graph event reads per Outlook
change are counted too (the coalescing must still hold them at ≤ 1.05).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.burst import PARIS, REDIS, _database, rooms
from simulators.processes import run_bridge, wait_for
from simulators.sandbox import Sandbox

UTC = ZoneInfo("UTC")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


class Side:
    def __init__(self, name: str, sb: Sandbox, meetings: list[dict], loan_of: dict[str, str]) -> None:
        self.name, self.sb, self.meetings, self.loan_of = name, sb, meetings, loan_of
        self.pairs: list[tuple[str, str]] = []  # (loan born in the booking system, its event)
        self.outlook: list[float] = []
        self.booking: list[float] = []


def setup(stack: ExitStack, name: str, coalesce: bool, args: argparse.Namespace, workdir: Path) -> Side:
    workdir = workdir / ("product" if coalesce else "baseline")  # each bridge's logs apart
    workdir.mkdir()
    database, drop = _database(args.stack, workdir)
    stack.callback(drop)
    sb = stack.enter_context(Sandbox.start(rooms=rooms(args.rooms)))
    bridge = stack.enter_context(run_bridge(
        sb, workdir, database, REDIS if args.stack == "redis" else None, workers=args.workers,
        extra_env={"HINT_COALESCE_MS": "500" if coalesce else "0",
                   "REDIS_NAMESPACE": f"rbbench-{uuid.uuid4().hex[:8]}"}))
    r = bridge.api("POST", "/api/integrations", json=sb.integration(ignore_tags=[]))
    r.raise_for_status()
    iid = r.json()["id"]
    sb.booking.set_hook_target(f"{bridge.base_url}/hooks/booking/{iid}", r.json()["hook_secret"])
    wait_for(lambda: len(bridge.api("GET", f"/api/integrations/{iid}/subscriptions").json()["items"]) == args.rooms,
             180, "subscriptions")
    day = (datetime.now(PARIS) + timedelta(days=3)).date()
    meetings = []
    for i in range(args.changes):
        start = datetime(day.year, day.month, day.day, 7 + i % 12, 0, tzinfo=PARIS) + timedelta(days=i // 12)
        meetings.append(sb.graph.create_meeting("alice@contoso.com", f"L{i}", start, start + timedelta(minutes=30),
                                                rooms=[f"salle-{i % args.rooms:02d}@contoso.com"]))
    wait_for(lambda: len(sb.booking.loans) == args.changes, 300, "every loan", interval=0.2)
    sb.settle(2.0, timeout=300)
    loan_of = {loan.origin.ref: loan.id for loan in sb.booking.loans.values() if loan.origin}
    # Loans born in the booking system (a meeting born in Outlook is changed by its organiser only): each becomes an
    # event in the requester's calendar; they are matched by start time.
    day2 = day + timedelta(days=7)
    booked = [sb.booking.create_loan({"email": "alice@contoso.com", "name": "Alice Martin"},
                                     *(lambda s: (s, s + timedelta(minutes=30)))(
                                         datetime(day2.year, day2.month, day2.day, 7 + i % 12, 0, tzinfo=PARIS)
                                         + timedelta(days=i // 12)),
                                     places=[f"salle-{i % args.rooms:02d}@contoso.com"])
              for i in range(args.changes)]
    born_in_outlook = {m["id"] for m in meetings}

    def created() -> list[dict]:
        events = [e for e in sb.graph.events("alice@contoso.com")
                  if e.get("isOrganizer") and e["id"] not in born_in_outlook]
        return events if len(events) == args.changes else []

    events = wait_for(created, 300, "an event per loan", interval=0.2)
    events.sort(key=lambda e: datetime.fromisoformat(e["start"]["dateTime"][:19]))
    pairs = list(zip(sorted(booked, key=lambda loan: loan.start), events, strict=True))
    sb.settle(2.0, timeout=300)
    sb.graph.latency = args.latency
    sb.booking.latency = args.latency
    sb.graph.delivery.duplicates = 3
    side = Side(name, sb, meetings, loan_of)
    side.pairs = [(loan.id, event["id"]) for loan, event in pairs]
    return side


def outlook_change(side: Side, i: int, rnd: int) -> None:
    m = side.meetings[i]
    start = datetime.fromisoformat(m["start"]["dateTime"][:19]).replace(tzinfo=UTC)
    minute = [15, 45][rnd % 2]  # loans are kept on quarter hours (round_slot)
    start = start.replace(minute=minute)
    loan_id = side.loan_of[m["iCalUId"]]
    t0 = time.monotonic()
    side.sb.graph.update_event("alice@contoso.com", m["id"], start=start, end=start + timedelta(minutes=30))
    wait_for(lambda: side.sb.booking.loan(loan_id).start.astimezone(UTC).minute == minute, 60,
             f"{side.name}: the loan to move", interval=0.002)
    side.outlook.append(time.monotonic() - t0)
    side.sb.settle(0.3, timeout=60)  # the duplicates delivered and handled before the next change


def booking_change(side: Side, i: int, rnd: int) -> None:
    loan_id, event_id = side.pairs[i]
    loan = side.sb.booking.loan(loan_id)
    minute = [30, 0][rnd % 2]
    start = loan.start.astimezone(UTC).replace(minute=minute)
    t0 = time.monotonic()
    side.sb.booking.update_loan(loan.id, start=start, end=start + timedelta(minutes=30))

    def moved() -> bool:
        event = side.sb.graph.event("alice@contoso.com", event_id)
        return datetime.fromisoformat(event["start"]["dateTime"][:19]).minute == minute

    wait_for(moved, 60, f"{side.name}: the event to move", interval=0.002)
    side.booking.append(time.monotonic() - t0)
    side.sb.settle(0.3, timeout=60)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench latency", description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20, help="meetings; each is changed once per direction")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--stack", choices=["redis", "embedded"], default="redis")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per simulated Graph / Booking call")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="roombridge-bench-"))
    print(f"latency: {args.changes} meetings × {args.rounds} rounds, each moved in Outlook then in the booking system;"
          f" {args.latency * 1000:.0f} ms per simulated call; notifications ×3; stack={args.stack}")
    with ExitStack() as stack:
        product = setup(stack, "RoomBridge", True, args, workdir)
        baseline = setup(stack, "coalescing off", False, args, workdir)
        for rnd in range(args.rounds):
            for i in range(args.changes):
                for side in (product, baseline) if i % 2 == 0 else (baseline, product):
                    outlook_change(side, i, rnd)
                    booking_change(side, i, rnd)
            print(f"  round {rnd + 1} done", flush=True)
    print(f"{'':<34}{'p50 s':>8}{'p95 s':>8}{'max s':>8}")
    for side in (baseline, product):
        for what, values in (("Outlook → booking", side.outlook), ("booking → Outlook", side.booking)):
            print(f"{side.name + ', ' + what:<34}{pct(values, 0.5):>8.3f}{pct(values, 0.95):>8.3f}{max(values):>8.3f}")
    p95 = max(pct(product.outlook, 0.95), pct(product.booking, 0.95))
    print(f"RoomBridge p95 (worse direction) {p95:.3f} s; ratio to coalescing off "
          f"{p95 / max(pct(baseline.outlook, 0.95), pct(baseline.booking, 0.95)):.2f}   [target p95 ≤ 0.5 s]")
    print("duplicates: see `python -m bench burst` for reads per change (≤ 1.05)")
    print("target:", "met" if p95 <= 0.5 else "NOT met")
    return 0 if p95 <= 0.5 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
