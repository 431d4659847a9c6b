"""The admin's commands (issue 10.8): `roombridge status`, `roombridge journal --errors`, `roombridge backfill
--integration ID --since DATE`. They read the same database as the service (same settings), print with rich, and
`backfill` first prints what it covers (meetings and loans from that date, app/sync/backfill.py; `--preview` stops
there), then runs the backfill here, room by room, with a progress bar, ending with counts."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session, col, select

from app.platform.models import Integration, JournalEntry, Subscription
from app.platform.settings import Settings
from app.sync import backfill, connection, journal, reconcile
from app.sync.rooms import active_rooms
from app.sync.runtime import Runtime
from app.web.worklist import stats_of


def _runtime(settings: Settings) -> Runtime:
    from app.sync import runtime as runtime_mod

    rt = Runtime(settings)
    runtime_mod.install(rt)
    return rt


def status_rows(rt: Runtime) -> list[dict[str, Any]]:
    """What `roombridge status` prints: one summary per integration (the status page's, in short)."""
    out: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    with Session(rt.engine) as s:
        for i in s.exec(select(Integration).order_by(col(Integration.created_at))).all():
            rooms = active_rooms(s, i.id)
            subs = s.exec(select(Subscription).where(col(Subscription.integration_id) == i.id,
                                                     col(Subscription.status) == "active")).all()
            week = stats_of(s, i.id, now - timedelta(days=7), now, "week")
            totals: Counter[str] = Counter()
            for period in week["periods"]:
                for counts in period["counts"].values():
                    totals.update(counts)
            test = connection.last_result(s, i.id)
            out.append({
                "id": i.id, "name": i.name, "enabled": i.enabled, "rooms": len(rooms),
                "polled": sum(1 for r in rooms if r.polling), "subscriptions": len(subs),
                "next_expiry": min((x.expires_at for x in subs), default=None),
                "open_errors": week["backlog"]["open_errors"], "waiting": week["backlog"]["waiting"],
                "connection": None if test is None else ("ok" if test.get("ok") else "failed"),
                "last_7_days": dict(totals),
            })
    return out


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    rt = _runtime(settings)
    try:
        rows = status_rows(rt)
    finally:
        rt.close()
    console = Console()
    if not rows:
        console.print("No integration yet (see docs/setup.md).")
        return 0
    table = Table(title="RoomBridge")
    for name in ("integration", "enabled", "rooms (polled)", "subscriptions (next expiry)", "open errors",
                 "waiting", "connection test", "last 7 days"):
        table.add_column(name)
    for r in rows:
        expiry = f"{r['next_expiry']:%Y-%m-%d %H:%M}" if r["next_expiry"] else "—"
        table.add_row(f"{r['name']}\n{r['id']}", "yes" if r["enabled"] else "no", f"{r['rooms']} ({r['polled']})",
                      f"{r['subscriptions']} ({expiry})", str(r["open_errors"]), str(r["waiting"]),
                      r["connection"] or "never", ", ".join(f"{k} {v}" for k, v in sorted(r["last_7_days"].items()))
                      or "—")
    console.print(table)
    return 1 if any(r["open_errors"] for r in rows) else 0


def cmd_journal(args: argparse.Namespace, settings: Settings) -> int:
    rt = _runtime(settings)
    try:
        with Session(rt.engine) as s:
            q = select(JournalEntry)
            if args.errors:
                q = q.where(col(JournalEntry.status) == "error", col(JournalEntry.action) != "wait")
            if args.integration:
                q = q.where(col(JournalEntry.integration_id) == args.integration)
            entries = s.exec(q.order_by(col(JournalEntry.at).desc()).limit(args.limit)).all()
    finally:
        rt.close()
    table = Table(title="open errors" if args.errors else "journal")
    for name in ("id", "first / last", "direction", "meeting / loan", "attempts", "outcome", "reason"):
        table.add_column(name, overflow="fold")
    for e in entries:
        table.add_row(e.id, f"{e.at:%Y-%m-%d %H:%M}\n{(e.last_at or e.at):%Y-%m-%d %H:%M}", e.direction,
                      "\n".join(x for x in (e.ical_uid, e.loan_id and f"loan {e.loan_id}") if x),
                      str(e.attempts), journal.outcome_of(e), e.message)
    Console().print(table)
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    since = datetime.combine(date.fromisoformat(args.since), time(), UTC)
    rt = _runtime(settings)
    console = Console()
    started = datetime.now(UTC)
    try:
        with Session(rt.engine) as s:
            integration = s.get(Integration, args.integration)
            if integration is None or not integration.enabled:
                console.print(f"[red]no enabled integration {args.integration}[/red]")
                return 2
            rooms = active_rooms(s, integration.id)
        # What it covers, before it starts (seed 000's counter): the same count as the status page's form shows.
        with console.status("counting what this backfill covers…"):
            covers = backfill.preview(rt, integration.id, since)
        console.print(backfill.summary(covers))
        for bad in covers["unreadable_rooms"]:
            console.print(f"[yellow]unreadable[/yellow] {bad['room']}: {bad['reason']}")
        if args.preview:
            return 0
        failed: list[str] = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("rooms", total=len(rooms) + 1)
            for room in rooms:
                progress.update(task, description=room.email)
                try:
                    reconcile.reconcile_room(rt, room.id, True, since)
                except Exception as e:  # noqa: BLE001 - counted and named; the other rooms go on
                    failed.append(f"{room.email}: {type(e).__name__}")
                progress.advance(task)
            progress.update(task, description="loans")
            loans = reconcile.reconcile_loans(rt, integration.id, since)
            progress.advance(task)
        with Session(rt.engine) as s:
            written = s.exec(select(JournalEntry.status, JournalEntry.action).where(
                col(JournalEntry.integration_id) == integration.id, col(JournalEntry.at) >= started)).all()
    finally:
        rt.close()
    outcomes = Counter("waiting" if st == "error" and act == "wait" else journal.OUTCOMES.get(st, st)
                       for st, act in written)
    console.print(f"backfill from {since:%Y-%m-%d}: {len(rooms) - len(failed)}/{len(rooms)} rooms, "
                  f"{loans} loans read; journal: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "nothing to do"))
    for line in failed:
        console.print(f"[red]failed[/red] {line}")
    return 1 if failed else 0


def register(sub: Any, settings_of: Any) -> None:
    """Add the admin commands to `roombridge`'s subparsers; `settings_of()` loads the settings (exits on error)."""
    p = sub.add_parser("status", help="each integration in one line: rooms, subscriptions, errors, last test")
    p.set_defaults(func=lambda a: cmd_status(a, settings_of()))
    p = sub.add_parser("journal", help="the journal, newest first (--errors: only what needs a person)")
    p.add_argument("--errors", action="store_true")
    p.add_argument("--integration")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=lambda a: cmd_journal(a, settings_of()))
    p = sub.add_parser("backfill", help="sync the meetings and loans that already exist, from a date")
    p.add_argument("--integration", required=True)
    p.add_argument("--since", required=True, help="YYYY-MM-DD")
    p.add_argument("--preview", action="store_true", help="only count what it covers (meetings, loans), then stop")
    p.set_defaults(func=lambda a: cmd_backfill(a, settings_of()))
