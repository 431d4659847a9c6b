"""`BookingSimulator`: the simulated booking system's server, its control API (what a user of the booking
system does, for tests and the demo), hook delivery modes and fault injection."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.core.contract import (
    HookType,
    Loan,
    LoanItemRef,
    LoanNote,
    LoanPatch,
    LoanStatus,
    Origin,
    Place,
    PlaceUpsert,
    Requester,
    hook_type_for,
    to_utc,
)
from simulators.booking.faults import Faults
from simulators.booking.hooks import HookDelivery, HookDispatcher
from simulators.booking.routes import build_app
from simulators.booking.state import BookingStats, BookingStore
from simulators.server import ServerThread


class BookingSimulator:
    def __init__(self, api_key: str = "booking-sim-key", store_id: str = "store-1", port: int = 0) -> None:
        self.api_key = api_key
        self.store_id = store_id
        self._store = BookingStore(store_id)
        self._faults = Faults()
        self.hooks = HookDispatcher(self._store.stats)
        self.app = build_app(self._store, self._faults, self.hooks, api_key)
        self._port = port
        self._server: ServerThread | None = None
        self._lifecycle = threading.Lock()
        self._up_timer: threading.Timer | None = None

    # -- server -----------------------------------------------------------------------------------------------

    def start(self) -> "BookingSimulator":
        with self._lifecycle:
            self._serve()
        return self

    def _serve(self) -> None:
        server = ServerThread(self.app, port=self._port).start()
        self._port, self._server = server.port, server
        self._store.base_url = server.base_url

    @property
    def base_url(self) -> str:
        if not self._port:
            raise RuntimeError("the simulator is not started")
        return f"http://127.0.0.1:{self._port}"

    def stop(self) -> None:
        with self._lifecycle:
            self._cancel_timer()
            if self._server is not None:
                self._server.stop()
                self._server = None
        self.hooks.close()

    def __enter__(self) -> "BookingSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        return self._faults.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._faults.latency = seconds

    @property
    def stores_api(self) -> bool:
        """Whether `GET /v1/stores/{id}` (optional in the contract) is implemented; off: it answers a plain 404."""
        return self._store.stores_api

    @stores_api.setter
    def stores_api(self, on: bool) -> None:
        self._store.stores_api = on

    def inject(self, status: int = 503, count: int = 1, retry_after: float | None = None) -> None:
        """The next `count` API requests are answered `status` (+ `Retry-After: retry_after` if given)."""
        self._faults.inject(status, count, retry_after)

    def down(self, seconds: float | None = None) -> None:
        """Stop listening: connections are refused (the port stays reserved for `up()`).
        With `seconds`, come back up by itself after that long."""
        with self._lifecycle:
            self._cancel_timer()
            if self._server is not None:
                self._server.stop()
                self._server = None
            if seconds is not None:
                self._up_timer = threading.Timer(seconds, self.up)
                self._up_timer.daemon = True
                self._up_timer.start()

    def up(self) -> None:
        """Listen again on the same port, with the same state."""
        with self._lifecycle:
            self._cancel_timer()
            if self._server is None:
                self._serve()

    @property
    def is_down(self) -> bool:
        return self._server is None

    def _cancel_timer(self) -> None:
        if self._up_timer is not None and self._up_timer is not threading.current_thread():
            self._up_timer.cancel()
        self._up_timer = None

    # -- hooks ------------------------------------------------------------------------------------------------

    def set_hook_target(self, url: str | None, secret: str | None) -> None:
        """Where reverse hooks go and the secret they are signed with; None stops sending."""
        self.hooks.set_target(url, secret)

    def send_hook(self, loan_id: str, hook_type: HookType | None = None, *, timestamp_offset: float = 0,
                  secret: str | None = None, delivery_id: str | None = None) -> HookDelivery:
        """Send one hook for the loan's current state right now, once, optionally signed `timestamp_offset`
        seconds off, with another `secret`, or reusing a `delivery_id`. For the bridge's signature tests."""
        loan = self.loan(loan_id)
        return self.hooks.send(hook_type or hook_type_for(loan), loan, secret=secret, delivery_id=delivery_id,
                               timestamp=int(time.time() + timestamp_offset))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self.hooks.wait_idle(timeout)

    # -- control API (a user of the booking system) -----------------------------------------------------------

    def add_place(self, email: str, name: str | None = None, **fields: Any) -> Place:
        """Create or update a place as the booking system's admin would (no hook, not counted)."""
        place, _ = self._store.upsert_place(email, PlaceUpsert(email=email, name=name or email, **fields))
        return place

    def create_loan(self, requester: Requester | dict[str, str], start: datetime, end: datetime,
                    places: Sequence[str] = (), assets: Sequence[str] = (), status: LoanStatus = "new",
                    origin: Origin | None = None) -> Loan:
        """A loan made in the booking system; `places` are e-mails of known places. Sends `loan.created`."""
        requester = requester if isinstance(requester, Requester) else Requester(**requester)
        # Unlike the API, a user may book over anything: tests build clashes on purpose.
        loan = self._store.add_loan(requester, to_utc(start), to_utc(end), self.store_id, self._place_ids(places),
                                    status=status, origin=origin, assets=assets, enforce_availability=False)
        self.hooks.emit("loan.created", loan)
        return loan

    def update_loan(self, loan_id: str, *, start: datetime | None = None, end: datetime | None = None,
                    places: Sequence[str] | None = None, status: LoanStatus | None = None,
                    requester: Requester | dict[str, str] | None = None) -> Loan:
        """Change a loan as a user would; sends the matching hook if anything changed."""
        items = [LoanItemRef(id=pid) for pid in self._place_ids(places)] if places is not None else None
        patch = LoanPatch(start=start, end=end, items=items,
                          requester=Requester(**requester) if isinstance(requester, dict) else requester)
        loan, changed = self._store.update_loan(loan_id, patch, status=status, enforce_availability=False)
        if changed:
            self.hooks.emit(hook_type_for(loan), loan)
        return loan

    def cancel_loan(self, loan_id: str, reason: str | None = None) -> Loan:
        """Cancel as a user would; `reason="no_show"` closes it as a no-show (kept as `cancel_reason`)."""
        return self._close(loan_id, "cancelled", reason=reason)

    def no_show(self, loan_id: str) -> Loan:
        """The automatic check-out's closing of a loan whose requester never came (seed 001)."""
        return self._close(loan_id, "cancelled", reason="no_show")

    def return_loan(self, loan_id: str, returned_at: datetime | None = None) -> Loan:
        """The loan's items brought back (an early return when before its end); sends `loan.updated`."""
        return self._close(loan_id, "returned", returned_at=to_utc(returned_at) if returned_at else None)

    def refuse_loan(self, loan_id: str) -> Loan:
        return self._close(loan_id, "refused")

    def notes(self, loan_id: str) -> list[LoanNote]:
        """The notes the bridge added to a loan (`POST /v1/loans/{id}/notes`)."""
        return self._store.notes(loan_id)

    def _close(self, loan_id: str, status: LoanStatus, *, reason: str | None = None,
               returned_at: datetime | None = None) -> Loan:
        loan, changed = self._store.close_loan(loan_id, status, reason=reason, returned_at=returned_at)
        if changed:
            self.hooks.emit(hook_type_for(loan), loan)
        return loan

    def block(self, place_email: str, start: datetime, end: datetime) -> None:
        """Make a place unavailable on [start, end) without a loan (maintenance, another store...)."""
        self._store.block(place_email, to_utc(start), to_utc(end))

    def _place_ids(self, emails: Sequence[str]) -> list[str]:
        return [self._store.place_by_email(email).id for email in emails]

    @property
    def loans(self) -> dict[str, Loan]:
        return self._store.loans

    @property
    def places(self) -> dict[str, Place]:
        """By lower-case e-mail."""
        return self._store.places

    def loan(self, loan_id: str) -> Loan:
        return self._store.loan(loan_id)

    @property
    def stats(self) -> BookingStats:
        return self._store.stats

    def reset(self) -> None:
        """Back to a fresh simulator on the same port: no data, counters, faults, delivery modes or hook target."""
        self.up()
        self._store.reset()
        self._faults.reset()
        self.hooks.reset()
        self.hooks.set_target(None, None)
