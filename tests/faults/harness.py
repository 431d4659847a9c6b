"""Real `roombridge` processes that a fault test can kill and start again on the same port and database, and the
counts every fault test prints: changes lost (never applied) and doubled (applied twice).

`simulators.processes.run_bridge` starts a bridge for the length of a `with`; a fault test needs more: SIGKILL or
SIGTERM one process, start it again with the same address (Graph's subscriptions and the booking system's hook target
point at it), add a `scheduler`, point the bridge at a Redis of the test's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from simulators.processes import wait_for
from simulators.sandbox import Sandbox
from simulators.server import free_port
from tests.conftest import ADMIN_TOKEN, SECRET_KEY

PARIS = ZoneInfo("Europe/Paris")
WAIT = 120.0
JUPITER, SATURNE = "salle-jupiter@contoso.com", "salle-saturne@contoso.com"
ROOMS = (JUPITER, SATURNE)  # the sandbox's third room is tagged Maintenance: ignored by the integration
ORGANISER = "alice@contoso.com"  # Outlook-born meetings
REQUESTER = {"email": "bob@contoso.com", "name": "Bob Durand"}  # booking-born loans
ACTIVE_LOAN = ("new", "pending", "confirmed", "ongoing")


@dataclass
class Stack:
    """The bridge's processes by role (`serve`, `worker`, `scheduler`), all with one environment."""

    sandbox: Sandbox
    tmp_path: Path
    database_url: str
    redis_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    procs: dict[str, list[subprocess.Popen]] = field(default_factory=dict)
    integration_id: str = ""
    hook_secret: str = ""

    def __post_init__(self) -> None:
        from app.platform.migrate import upgrade

        upgrade(self.database_url)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                 timeout=60)
        self._starts = 0

    def env(self) -> dict[str, str]:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))},
               **self.sandbox.bridge_env(), "DATABASE_URL": self.database_url, "PUBLIC_BASE_URL": self.base_url,
               "ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": SECRET_KEY, "LOG_FORMAT": "json", "WORKER_THREADS": "4",
               **self.extra_env}
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def start(self, role: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "app.cli", role]
        if role == "serve":
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self._starts += 1
        log = self.tmp_path / f"{self._starts:02d}-{role}.log"
        proc = subprocess.Popen(command, env=self.env(), stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.procs.setdefault(role, []).append(proc)
        if role == "serve":
            wait_for(lambda: self.http.get("/readyz").status_code == 200, 180, "the bridge to be ready")
        return proc

    def running(self, role: str) -> list[subprocess.Popen]:
        return [p for p in self.procs.get(role, []) if p.poll() is None]

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = WAIT) -> float:
        """Send `sig` and wait for the process to exit; returns how long it took."""
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout)
        return time.monotonic() - t0

    def close(self) -> None:
        for procs in self.procs.values():
            for p in procs:
                if p.poll() is None:
                    p.terminate()
        for procs in self.procs.values():
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.http.close()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("*.log")))

    # --- the integration -------------------------------------------------------------------------------------------

    def setup_integration(self, **overrides: Any) -> str:
        r = self.http.post("/api/integrations", json=self.sandbox.integration(**overrides))
        assert r.status_code == 201, r.text
        integration = r.json()
        self.integration_id, self.hook_secret = integration["id"], integration["hook_secret"]
        wait_for(lambda: len(self.api("GET", "/subscriptions").json()["items"]) == 2, WAIT, "two subscriptions")
        places = self.sandbox.booking
        wait_for(lambda: len(places.places) == 2 and all(p.id for p in places.places.values()), WAIT, "places")
        self.sandbox.booking.set_hook_target(f"{self.base_url}/hooks/booking/{self.integration_id}",
                                             self.hook_secret)
        self.steady_state()
        return self.integration_id

    def steady_state(self) -> None:
        """As after a while in service: every room reconciled and the booking cursor set, so that no periodic round
        is due for hours (a fresh integration's rooms are due at the scheduler's next tick, which would recover lost
        jobs by chance and hide a missing catch-up)."""
        from sqlmodel import Session, select

        from app.platform.db import make_engine
        from app.platform.models import Integration, Room

        started = datetime.now(UTC)
        assert self.api("POST", "/reconcile").status_code == 202
        engine = make_engine(self.database_url)

        def reconciled() -> bool:
            with Session(engine) as s:
                rooms = s.exec(select(Room).where(Room.integration_id == self.integration_id,
                                                  Room.active == True)).all()  # noqa: E712
                integration = s.get(Integration, self.integration_id)
                return integration is not None and integration.loans_synced_at is not None \
                    and _aware(integration.loans_synced_at) >= started - timedelta(seconds=5) \
                    and len(rooms) == 2 and all(r.reconciled_at is not None
                                                and _aware(r.reconciled_at) >= started - timedelta(seconds=5)
                                                for r in rooms)

        try:
            wait_for(reconciled, WAIT, "every room and the booking side reconciled")
        finally:
            engine.dispose()

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"/api/integrations/{self.integration_id}{path}", **kw)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# --- the changes a fault test makes, and what became of them --------------------------------------------------------


def slot(first_day: int, i: int, per_day: int = 20) -> tuple[str, datetime, datetime]:
    """The i-th free 30-minute slot from `first_day` days ahead, alternating between the two rooms."""
    room = ROOMS[i % 2]
    k = i // 2
    day: date = (datetime.now(PARIS) + timedelta(days=first_day + k // per_day)).date()
    start = datetime(day.year, day.month, day.day, 8, 0, tzinfo=PARIS) + timedelta(minutes=30 * (k % per_day))
    return room, start, start + timedelta(minutes=30)


@dataclass
class Burst:
    meetings: list[dict[str, Any]] = field(default_factory=list)  # Outlook-born
    loans: list[Any] = field(default_factory=list)  # booking-born


def make_burst(sandbox: Sandbox, meetings: int, loans: int, tag: str = "B", meeting_day: int = 2,
               loan_day: int = 40) -> Burst:
    """`meetings` Outlook meetings (alice) and `loans` booking loans (bob), interleaved, each in a slot of its own
    (another burst of the same test starts on other days)."""
    burst = Burst()
    total = meetings + loans
    for n in range(total):
        if n * meetings // total != (n + 1) * meetings // total:
            i = len(burst.meetings)
            room, start, end = slot(meeting_day, i)
            burst.meetings.append(sandbox.graph.create_meeting(ORGANISER, f"{tag}-M{i}", start, end, rooms=[room],
                                                               time_zone="Romance Standard Time"))
        else:
            j = len(burst.loans)
            room, start, end = slot(loan_day, j)
            burst.loans.append(sandbox.booking.create_loan(REQUESTER, start, end, places=[room]))
    return burst


@dataclass
class Counts:
    lost: int
    doubled: int
    lost_meetings: list[str]
    lost_loans: list[str]

    def line(self, label: str) -> str:
        return f"[fault] {label}: lost={self.lost} doubled={self.doubled}"


def count(sandbox: Sandbox, burst: Burst) -> Counts:
    """Lost: a meeting without an active loan, a loan without an event in its requester's calendar. Doubled: a
    meeting with more than one active loan, a loan with more than one event."""
    loans_by_meeting: dict[str, int] = {}
    for loan in sandbox.booking.loans.values():
        if loan.origin is not None and loan.status in ACTIVE_LOAN:
            loans_by_meeting[loan.origin.ref] = loans_by_meeting.get(loan.origin.ref, 0) + 1
    events = [e for e in sandbox.graph.events(REQUESTER["email"]) if e.get("isOrganizer")]
    events_by_loan: dict[str, int] = {}
    for loan in burst.loans:
        prefix = f"{loan.number} – "
        events_by_loan[loan.id] = sum(1 for e in events if (e.get("subject") or "").startswith(prefix))
    lost_meetings = [m["iCalUId"] for m in burst.meetings if loans_by_meeting.get(m["iCalUId"], 0) == 0]
    lost_loans = [loan.id for loan in burst.loans if events_by_loan[loan.id] == 0]
    doubled = sum(1 for m in burst.meetings if loans_by_meeting.get(m["iCalUId"], 0) > 1) \
        + sum(1 for n in events_by_loan.values() if n > 1)
    return Counts(len(lost_meetings) + len(lost_loans), doubled, lost_meetings, lost_loans)


def merge(*bursts: Burst) -> Burst:
    return Burst([m for b in bursts for m in b.meetings], [loan for b in bursts for loan in b.loans])


def applied(sandbox: Sandbox, burst: Burst) -> bool:
    return count(sandbox, burst).lost == 0


def progress(sandbox: Sandbox, burst: Burst) -> int:
    """How many of the burst's changes are applied so far."""
    c = count(sandbox, burst)
    return len(burst.meetings) + len(burst.loans) - c.lost


def wait_applied(sandbox: Sandbox, burst: Burst, since: float, timeout: float = WAIT) -> float:
    """Wait until every change of the burst is applied; returns the seconds since `since` (a monotonic time)."""
    try:
        wait_for(lambda: applied(sandbox, burst), timeout, "every change of the burst applied", interval=0.25)
    except AssertionError:
        c = count(sandbox, burst)
        print(c.line(f"NOT applied {timeout:.0f}s after"))
        raise AssertionError(f"{c.lost} changes never applied ({len(c.lost_meetings)} meetings without a loan, "
                             f"{len(c.lost_loans)} loans without an event), {c.doubled} doubled") from None
    return time.monotonic() - since


def settled_counts(sandbox: Sandbox, burst: Burst, label: str) -> Counts:
    """Once nothing moves any more: the counts, printed."""
    sandbox.settle(2.0, timeout=WAIT)
    c = count(sandbox, burst)
    print(c.line(label))
    return c


def no_server_errors(statuses: Iterable[int]) -> bool:
    return all(s < 500 or s == 503 for s in statuses)
