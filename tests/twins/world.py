"""`World`: the real sync flows on a fresh SQLite database, wired to a `GraphTwin` and a `BookingTwin`.

Notifications and hooks the twins record become pending jobs (`jobs`); tests deliver them in any order, duplicate or
drop them, arm faults on the twins, and `settle()` runs everything until nothing is pending, re-running jobs that
failed transiently (as the job queue would).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import event
from sqlmodel import select

from app.adapters.booking.client import BookingUnavailable
from app.adapters.graph.errors import GraphThrottled
from app.core.contract import PlaceUpsert, Requester
from app.platform.db import make_engine, session_scope
from app.platform.locks import WriteInFlight
from app.platform.migrate import upgrade
from app.platform.models import Integration, JournalEntry, Link, Room
from app.sync import booking_to_outlook, outlook_to_booking, reconcile
from app.sync.runtime import Runtime
from tests.conftest import make_settings
from tests.twins.booking import BookingTwin
from tests.twins.clock import TwinClock
from tests.twins.faults import JobKilled
from tests.twins.graph import DOMAIN, GraphTwin

TRANSIENT = (GraphThrottled, BookingUnavailable, JobKilled, WriteInFlight)
MAX_ATTEMPTS = 20
ROOMS = [("atlas", "Atlas"), ("boreal", "Boreal"), ("cirrus", "Cirrus"), ("dune", "Dune")]
USERS = [("alice", "Alice Martin"), ("bob", "Bob Durand"), ("accueil", "Accueil Contoso")]
DEFAULT_USER = f"accueil@{DOMAIN}"

_template_lock = threading.Lock()
_template: Path | None = None


def email(name: str) -> str:
    return f"{name}@{DOMAIN}"


def _migrated_template() -> Path:
    """One migrated database per process; each world starts from a copy (migrating costs ~0.5 s, copying ~1 ms)."""
    global _template
    with _template_lock:
        if _template is None:
            path = Path(tempfile.mkdtemp(prefix="rb-twins-")) / "template.db"
            upgrade(f"sqlite:///{path}")
            _template = path
        return _template


def _no_fsync(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # A throwaway database: commits need not reach the disk (an fsync per commit was 90 % of the run time).
    dbapi_connection.execute("PRAGMA synchronous=OFF")


@dataclass(frozen=True)
class Job:
    kind: str  # "note" (a Graph notification: room id, event id) | "hook" (a reverse hook: loan id)
    key: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.kind}{self.key}"


class World:
    def __init__(self, directory: Path | None = None, rooms: int = len(ROOMS)) -> None:
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="rb-world-")
        base = Path(directory or self._tmp.name)  # type: ignore[union-attr]
        db = base / "roombridge.db"
        shutil.copy(_migrated_template(), db)
        self.clock = TwinClock()  # shared: "newest wins" compares Graph's and the booking system's times
        self.graph = GraphTwin(clock=self.clock)
        self.booking = BookingTwin(clock=self.clock)
        settings = make_settings(f"sqlite:///{db}")
        engine = make_engine(settings.database_url)
        event.listen(engine, "connect", _no_fsync)
        self.rt = Runtime(settings, engine,
                          graph_factory=lambda _i: self.graph, booking_factory=lambda _i: self.booking)
        self.jobs: list[Job] = []
        self.failures: list[tuple[Job, str]] = []  # transient failures seen (for reports)
        users = self.graph.users
        for name, display in USERS:
            users.add_user(email(name), display)
        self.room_ids: dict[str, str] = {}  # e-mail → Room row id
        self._room_by_mailbox: dict[str, str] = {}
        with session_scope(self.rt.engine) as s:
            integration = Integration(
                name="Contoso (twins)", enabled=True, tenant_domain=DOMAIN,
                tenant_id="00000000-0000-0000-0000-000000000001", client_id="00000000-0000-0000-0000-000000000002",
                client_secret_enc="", booking_base_url="https://booking.example", booking_api_key_enc="",
                hook_secret_enc="", default_store_id=self.booking.store_id, default_user_email=DEFAULT_USER)
            s.add(integration)
            s.flush()
            self.integration_id = integration.id
            for name, display in ROOMS[:rooms]:
                mailbox_id = users.add_room(email(name), display)
                place = self.booking.store.upsert_place(email(name), PlaceUpsert(email=email(name), name=display))[0]
                room = Room(integration_id=integration.id, email=email(name), name=display, mailbox_id=mailbox_id,
                            place_id=place.id)
                s.add(room)
                s.flush()
                self.room_ids[email(name)] = room.id
                self._room_by_mailbox[mailbox_id] = room.id

    def close(self) -> None:
        self.rt.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------------------------------

    def collect(self) -> list[Job]:
        """Turn what the twins recorded since last time into pending jobs (appended in order)."""
        for mailbox_id, event_id in self.graph.take_notifications():
            self.jobs.append(Job("note", (self._room_by_mailbox[mailbox_id], event_id)))
        for loan_id in self.booking.take_hooks():
            self.jobs.append(Job("hook", (loan_id,)))
        return self.jobs

    def run(self, job: Job) -> None:
        if job.kind == "note":
            room_id, event_id = job.key
            outlook_to_booking.process_room_event(self.rt, self.integration_id, room_id, event_id)
        else:
            booking_to_outlook.process_loan(self.rt, self.integration_id, job.key[0])

    def deliver(self, index: int = 0) -> Job | None:
        """Run the pending job at `index` (any order: reordering); a transient failure puts it back at the end."""
        self.collect()
        if not self.jobs:
            return None
        job = self.jobs.pop(index % len(self.jobs))
        self._attempt(lambda: self.run(job), job)
        self.collect()
        return job

    def _attempt(self, fn, job: Job | None) -> bool:  # type: ignore[no-untyped-def]
        try:
            fn()
            return True
        except TRANSIENT as e:
            self.failures.append((job or Job("reconcile", ()), type(e).__name__))
            if job is not None:
                self.jobs.append(job)
            nudge = Job("hook", (e.loan_id,)) if isinstance(e, WriteInFlight) and e.loan_id else None
            if job is not None and job.kind == "note" and nudge is not None and nudge not in self.jobs:
                self.jobs.insert(len(self.jobs) - 1, nudge)  # as workers.actors.process_room_event does
            return False

    def settle(self, max_jobs: int = 2000) -> None:
        """Deliver everything pending, in order, re-running transient failures, until nothing is left."""
        for _ in range(max_jobs):
            if not self.collect():
                return
            self.deliver(0)
        raise AssertionError(f"not quiet after {max_jobs} jobs: {[str(j) for j in self.jobs[:20]]}")

    def reconcile(self, full: bool = True) -> None:
        """One reconciliation round of every room (`full`: the whole window, else the delta since the last round) and
        of the loans, each retried until it succeeds."""
        for room_id in self.room_ids.values():
            self.reconcile_room(room_id, full)
        self.reconcile_loans()

    def reconcile_room(self, room_id: str, full: bool = True) -> None:
        self._retry(lambda: reconcile.reconcile_room(self.rt, room_id, full=full))

    def reconcile_loans(self) -> None:
        self._retry(lambda: reconcile.reconcile_loans(self.rt, self.integration_id))

    def _retry(self, fn) -> None:  # type: ignore[no-untyped-def]
        for _ in range(MAX_ATTEMPTS):
            if self._attempt(fn, None):
                return
        raise AssertionError("reconciliation kept failing")

    @property
    def writes(self) -> int:
        return self.graph.writes + self.booking.writes

    # -- users ------------------------------------------------------------------------------------------------------

    def meeting(self, organiser: str, rooms: list[str], start: datetime, end: datetime,
                subject: str = "Meeting", **kw: object) -> str:
        """An organiser books rooms in Outlook; returns the organiser's event id."""
        created = self.graph.users.create_meeting(email(organiser), subject, start, end,
                                                  rooms=[email(r) for r in rooms], **kw)  # type: ignore[arg-type]
        return str(created["id"])

    def loan(self, requester: str, rooms: list[str], start: datetime, end: datetime) -> str:
        """A loan booked in the booking system; returns its id."""
        people = dict(USERS)
        who = Requester(email=email(requester), name=people.get(requester, requester))
        return self.booking.user_create_loan(who, start, end, [email(r) for r in rooms]).id

    # -- what tests look at ------------------------------------------------------------------------------------------

    def links(self) -> list[Link]:
        with session_scope(self.rt.engine) as s:
            return list(s.exec(select(Link)).all())

    def journal(self) -> list[JournalEntry]:
        with session_scope(self.rt.engine) as s:
            return list(s.exec(select(JournalEntry).order_by(JournalEntry.at)).all())

    def room_copy(self, room: str, ical_uid: str):  # type: ignore[no-untyped-def]
        return next((e for e in self.graph.events(email(room)) if e.ical_uid == ical_uid), None)

    def organiser_event(self, organiser: str, event_id: str):  # type: ignore[no-untyped-def]
        return next((e for e in self.graph.events(email(organiser)) if e.id == event_id), None)
