"""`BookingTwin`: `BookingClient`'s methods over the booking simulator's `BookingStore`, in-process.

The bridge's calls raise the client's error types. Every change to a loan (by the bridge or by a user through the
`create_loan_as_user`... methods) records a reverse hook (the loan id) in `hooks` instead of sending it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from app.adapters.booking.client import (
    BookingConflict,
    BookingError,
    BookingNotFound,
    BookingRejected,
    BookingUnavailable,
)
from app.core.contract import (
    Loan,
    LoanCreate,
    LoanItemRef,
    LoanNote,
    LoanPatch,
    LoanStatus,
    Place,
    PlaceUpsert,
    Requester,
)
from simulators.booking.state import ApiError, BookingStore
from tests.twins.clock import TwinClock
from tests.twins.faults import Faults

PAGE = 100


def _translate(e: ApiError) -> BookingError:
    text = f"{e.status} {e.code}: {e.message}"
    if e.status == 429 or e.status >= 500:
        return BookingUnavailable(text, e.code, e.status)
    if e.status == 404:
        return BookingNotFound(text, e.code, e.status)
    if e.status == 409:
        return BookingConflict(text, e.code, e.status)
    return BookingRejected(text, e.code, e.status)


class BookingTwin:
    def __init__(self, store_id: str = "magasin-salles", clock: TwinClock | None = None) -> None:
        self.store = BookingStore(store_id)
        self.clock = clock or TwinClock()
        self.store._stamp = self.clock.now  # type: ignore[method-assign]  # `updated_at` from the logical clock
        self.store.base_url = "https://booking.example"
        self.store_id = store_id
        self.faults = Faults()
        self.hooks: list[str] = []  # loan ids, one per change, in order
        self.writes = 0  # the bridge's loan creates, patches and cancels
        self.calls = 0

    def take_hooks(self) -> list[str]:
        taken, self.hooks = self.hooks, []
        return taken

    def _enter(self) -> None:
        self.calls += 1
        self.faults.before_call()

    def _written(self, loan: Loan, changed: bool, kind: str) -> Loan:
        self.writes += 1
        if changed:
            self.hooks.append(loan.id)  # the real system also hooks the bridge's own changes
        self.faults.after_write(kind)
        return loan

    def close(self) -> None:
        pass

    # -- BookingClient ----------------------------------------------------------------------------------------------

    def upsert_place(self, place: PlaceUpsert) -> Place:
        self._enter()
        try:
            return self.store.upsert_place(place.email, place)[0]
        except ApiError as e:
            raise _translate(e) from None

    def deactivate_place(self, email: str) -> None:
        self._enter()
        try:
            self.store.deactivate_place(email)
        except ApiError as e:
            if e.status != 404:
                raise _translate(e) from None

    def availability(self, place_ids: Iterable[str], start: datetime, end: datetime,
                     exclude_loan: str | None = None) -> dict[str, bool]:
        self._enter()
        ids = list(dict.fromkeys(place_ids))
        return self.store.availability(ids, start, end, exclude_loan) if ids else {}

    def create_loan(self, loan: LoanCreate, idempotency_key: str) -> Loan:
        if not idempotency_key:
            raise ValueError("idempotency_key is required")
        self._enter()
        try:
            created, fresh = self.store.create_loan(loan, idempotency_key)
        except ApiError as e:
            raise _translate(e) from None
        return self._written(created, fresh, "create")

    def patch_loan(self, loan_id: str, patch: LoanPatch, if_match: int | None = None) -> Loan:
        self._enter()
        try:
            loan, changed = self.store.update_loan(loan_id, patch, if_match=if_match)
        except ApiError as e:
            raise _translate(e) from None
        return self._written(loan, changed, "update")

    def cancel_loan(self, loan_id: str, reason: str | None = None) -> Loan:
        self._enter()
        try:
            loan, changed = self.store.close_loan(loan_id, "cancelled")
        except ApiError as e:
            raise _translate(e) from None
        return self._written(loan, changed, "delete")

    def add_note(self, loan_id: str, note: LoanNote) -> None:
        self._enter()
        try:
            self.store.add_note(loan_id, note)
        except ApiError as e:
            raise _translate(e) from None

    def get_loan(self, loan_id: str) -> Loan:
        self._enter()
        try:
            return self.store.loan(loan_id)
        except ApiError as e:
            raise _translate(e) from None

    def changed_loans(self, since: datetime | None = None) -> Iterator[Loan]:
        self._enter()
        cursor = None
        while True:
            page, cursor = self.store.changed_since(since if cursor is None else None, cursor, PAGE)
            yield from page
            if not cursor:
                return

    # -- a user of the booking system (no fault, not counted as the bridge's writes) ----------------------------------

    def place_ids(self, emails: Sequence[str]) -> list[str]:
        return [self.store.place_by_email(e).id for e in emails]

    def user_create_loan(self, requester: Requester, start: datetime, end: datetime, places: Sequence[str],
                         status: LoanStatus = "new") -> Loan:
        """A loan booked in the booking system (availability enforced, as its own UI would)."""
        loan = self.store.add_loan(requester, start, end, self.store_id, self.place_ids(places), status=status)
        self.hooks.append(loan.id)
        return loan

    def user_update_loan(self, loan_id: str, *, start: datetime | None = None, end: datetime | None = None,
                         places: Sequence[str] | None = None, status: LoanStatus | None = None) -> Loan:
        items = [LoanItemRef(id=pid) for pid in self.place_ids(places)] if places is not None else None
        loan, changed = self.store.update_loan(loan_id, LoanPatch(start=start, end=end, items=items), status=status)
        if changed:
            self.hooks.append(loan.id)
        return loan

    def user_close_loan(self, loan_id: str, status: LoanStatus, *, reason: str | None = None,
                        returned_at: datetime | None = None) -> Loan:
        loan, changed = self.store.close_loan(loan_id, status, reason=reason, returned_at=returned_at)
        if changed:
            self.hooks.append(loan.id)
        return loan
