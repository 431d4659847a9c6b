"""In-memory state of the simulated booking system: places, loans, blocks, idempotency keys, counters.

Every method takes the one lock, so the uvicorn thread (API) and test threads (control API) can share it.
Methods raise `ApiError`; the routes turn it into `{"error": {...}}`, the control API lets it propagate.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.core.contract import (
    ACTIVE_STATUSES,
    CLOSED_STATUSES,
    Loan,
    LoanCreate,
    LoanItem,
    LoanNote,
    LoanPatch,
    LoanStatus,
    Origin,
    Place,
    PlaceUpsert,
    Requester,
)

MAX_PAGE_SIZE = 500
_STATS_LOCK = threading.Lock()


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class BookingStats:
    """What the bridge did through the API (control-API changes are not counted), plus hook deliveries."""

    loans_created: int = 0  # POST /v1/loans that created a loan
    create_replays: int = 0  # POST /v1/loans answered from an already used Idempotency-Key
    creates_by_key: Counter[str] = field(default_factory=Counter)  # successful POSTs per key, replays included
    loans_patched: int = 0  # successful PATCH calls, even those that changed nothing
    loans_cancelled: int = 0  # successful cancel calls
    loans_returned: int = 0  # successful POST /v1/loans/{id}/return
    notes_added: int = 0  # successful POST /v1/loans/{id}/notes
    places_upserted: int = 0
    places_deactivated: int = 0
    availability_calls: int = 0
    requests: int = 0  # every API request, rejected or not
    faults_injected: int = 0
    hooks_sent: int = 0  # HTTP POSTs made to the hook target (duplicates and retries included)
    hooks_delivered: int = 0  # POSTs answered 2xx
    hooks_failed: int = 0  # deliveries given up after the last attempt

    @property
    def loan_writes(self) -> int:
        return self.loans_created + self.loans_patched + self.loans_cancelled

    def add(self, name: str, n: int = 1) -> None:
        with _STATS_LOCK:  # `+=` on an attribute is not atomic across threads
            setattr(self, name, getattr(self, name) + n)

    def add_key(self, key: str) -> None:
        with _STATS_LOCK:
            self.creates_by_key[key] += 1

    def reset(self) -> None:
        fresh = BookingStats()
        with _STATS_LOCK:
            for name in self.__dataclass_fields__:
                setattr(self, name, getattr(fresh, name))


@dataclass(frozen=True)
class Block:
    place_id: str
    start: datetime
    end: datetime


def _overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end  # half-open intervals: back-to-back slots do not clash


def _encode_cursor(loan: Loan) -> str:
    raw = json.dumps([loan.updated_at.isoformat(), loan.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, loan_id = json.loads(raw)
        stamp = datetime.fromisoformat(when)
    except (binascii.Error, ValueError, TypeError):
        stamp = None
    if stamp is None or stamp.tzinfo is None:  # a naive stamp would not compare with `updated_at`
        raise ApiError(422, "invalid_cursor", "cursor is not one this server returned")
    return stamp, str(loan_id)


class BookingStore:
    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        self.store_name = f"Store {store_id}"
        self.stores_api = True  # off: `GET /v1/stores/{id}` is absent, as in a booking system of the first contract
        self.base_url = ""  # set by the simulator once its port is known; used for `Loan.url`
        self.stats = BookingStats()
        self._lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self._places: dict[str, Place] = {}  # by lower-case e-mail
        self._loans: dict[str, Loan] = {}
        self._blocks: list[Block] = []
        self._keys: dict[str, tuple[str, str]] = {}  # Idempotency-Key -> (request fingerprint, loan id)
        self._notes: dict[str, list[LoanNote]] = {}  # loan id -> notes the bridge added (e.g. conflicts)
        self._next_number = 1001
        self._last_stamp = datetime.min.replace(tzinfo=UTC)

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self.stats.reset()

    # -- reads ------------------------------------------------------------------------------------------------

    @property
    def places(self) -> dict[str, Place]:
        with self._lock:
            return dict(self._places)

    @property
    def loans(self) -> dict[str, Loan]:
        with self._lock:
            return dict(self._loans)

    def loan(self, loan_id: str) -> Loan:
        with self._lock:
            try:
                return self._loans[loan_id]
            except KeyError:
                raise ApiError(404, "loan_not_found", f"no loan {loan_id!r}") from None

    def place_by_email(self, email: str) -> Place:
        with self._lock:
            try:
                return self._places[email.lower()]
            except KeyError:
                raise ApiError(404, "place_not_found", f"no place {email!r}") from None

    # -- places -----------------------------------------------------------------------------------------------

    def upsert_place(self, email: str, data: PlaceUpsert) -> tuple[Place, bool]:
        """Returns the place and whether it was created."""
        if data.email.lower() != email.lower():
            raise ApiError(422, "email_mismatch", "body email differs from the e-mail in the path")
        with self._lock:
            existing = self._places.get(email.lower())
            place_id = existing.id if existing else f"pl_{uuid.uuid4().hex[:12]}"
            place = Place(**data.model_dump(exclude={"email"}), email=email.lower(), id=place_id)
            self._places[email.lower()] = place
            return place, existing is None

    def deactivate_place(self, email: str) -> Place:
        with self._lock:
            place = self.place_by_email(email)
            place = place.model_copy(update={"active": False})
            self._places[email.lower()] = place
            return place

    def block(self, email: str, start: datetime, end: datetime) -> None:
        with self._lock:
            self._blocks.append(Block(self.place_by_email(email).id, start, end))

    def availability(self, place_ids: list[str], start: datetime, end: datetime,
                     exclude_loan: str | None = None) -> dict[str, bool]:
        """Unknown and inactive places are reported unavailable rather than rejected."""
        with self._lock:
            active_ids = {p.id for p in self._places.values() if p.active}
            busy = {b.place_id for b in self._blocks if _overlaps(b.start, b.end, start, end)}
            for loan in self._loans.values():
                if loan.id != exclude_loan and loan.status in ACTIVE_STATUSES and _overlaps(
                        loan.start, loan.end, start, end):
                    busy.update(loan.place_ids)
            return {pid: pid in active_ids and pid not in busy for pid in place_ids}

    # -- loans ------------------------------------------------------------------------------------------------

    def _stamp(self) -> datetime:
        # Strictly increasing, so that `changed_since` paging by (updated_at, id) is exact.
        now = max(datetime.now(UTC), self._last_stamp + timedelta(microseconds=1))
        self._last_stamp = now
        return now

    def _place_items(self, place_ids: list[str]) -> list[LoanItem]:
        by_id = {p.id: p for p in self._places.values()}
        items = []
        for pid in dict.fromkeys(place_ids):
            place = by_id.get(pid)
            if place is None or not place.active:
                raise ApiError(422, "unknown_place", f"place {pid!r} does not exist or is inactive")
            items.append(LoanItem(kind="place", id=place.id, name=place.name, place_email=place.email))
        return items

    def _check_free(self, place_ids: list[str], start: datetime, end: datetime, exclude: str | None) -> None:
        taken = [pid for pid, free in self.availability(place_ids, start, end, exclude).items() if not free]
        if taken:
            raise ApiError(409, "place_unavailable", f"places not available for this slot: {', '.join(taken)}")

    def create_loan(self, data: LoanCreate, key: str) -> tuple[Loan, bool]:
        """API create. Returns the loan and whether it was created (False: a replay of `key`)."""
        fingerprint = data.model_dump_json()
        with self._lock:
            if key in self._keys:
                seen, loan_id = self._keys[key]
                if seen != fingerprint:
                    raise ApiError(422, "idempotency_key_reused",
                                   "this Idempotency-Key was used with a different request body")
                return self._loans[loan_id], False
            loan = self.add_loan(data.requester, data.start, data.end, data.store_id,
                                 [ref.id for ref in data.items], status=data.status, origin=data.origin)
            self._keys[key] = (fingerprint, loan.id)
            return loan, True

    def add_loan(self, requester: Requester, start: datetime, end: datetime, store_id: str,
                 place_ids: Sequence[str], *, status: LoanStatus = "new", origin: Origin | None = None,
                 assets: Sequence[str] = (), enforce_availability: bool = True) -> Loan:
        if start >= end:
            raise ApiError(422, "invalid_interval", "start must be before end")
        with self._lock:
            items = self._place_items(list(place_ids))
            if enforce_availability:
                self._check_free(list(place_ids), start, end, None)
            items += [LoanItem(kind="asset", id=f"as_{uuid.uuid4().hex[:8]}", name=name) for name in assets]
            loan_id = f"ln_{uuid.uuid4().hex[:16]}"
            loan = Loan(
                id=loan_id, number=f"PR-{self._next_number}", status=status, requester=requester,
                start=start, end=end, store_id=store_id, items=items,
                url=f"{self.base_url}/loans/{loan_id}", version=1, updated_at=self._stamp(), origin=origin,
            )
            self._next_number += 1
            self._loans[loan_id] = loan
            return loan

    def update_loan(self, loan_id: str, patch: LoanPatch, *, if_match: int | None = None,
                    status: LoanStatus | None = None, enforce_availability: bool = True,
                    closing: dict[str, object] | None = None) -> tuple[Loan, bool]:
        """Apply `patch` (and `status`, control API only). Returns the loan and whether anything changed."""
        with self._lock:
            loan = self.loan(loan_id)
            if if_match is not None and if_match != loan.version:
                raise ApiError(409, "version_mismatch", f"loan is at version {loan.version}, not {if_match}")
            if loan.status in CLOSED_STATUSES and status is None:
                raise ApiError(409, "loan_closed", f"loan is {loan.status}")
            update: dict[str, object] = {
                name: getattr(patch, name) for name in ("requester", "start", "end") if getattr(patch, name) is not None
            }
            if patch.items is not None:
                assets = [item for item in loan.items if item.kind == "asset"]
                update["items"] = self._place_items([ref.id for ref in patch.items]) + assets
            if status is not None:
                update["status"] = status
            update |= closing or {}  # `cancel_reason` / `returned_at` of a closing
            changed = loan.model_copy(update=update)
            if changed.start >= changed.end:
                raise ApiError(422, "invalid_interval", "start must be before end")
            if changed == loan:
                return loan, False
            if enforce_availability and changed.status in ACTIVE_STATUSES:
                self._check_free(changed.place_ids, changed.start, changed.end, loan.id)
            changed = changed.model_copy(update={"version": loan.version + 1, "updated_at": self._stamp()})
            self._loans[loan_id] = changed
            return changed, True

    def close_loan(self, loan_id: str, status: LoanStatus, *, reason: str | None = None,
                   returned_at: datetime | None = None) -> tuple[Loan, bool]:
        """Cancel, refuse or return; doing it again is a no-op, closing a loan closed otherwise is a conflict.
        A cancel keeps its `reason` as `cancel_reason` (`no_show`: the requester never came); a return keeps
        `returned_at` (default: now)."""
        with self._lock:
            loan = self.loan(loan_id)
            if loan.status == status:
                return loan, False
            if loan.status in CLOSED_STATUSES:
                raise ApiError(409, "loan_closed", f"loan is {loan.status}")
            closing: dict[str, object] = {}
            if status == "cancelled" and reason:
                closing["cancel_reason"] = reason[:500]
            if status == "returned":
                closing["returned_at"] = returned_at or self._stamp()
            return self.update_loan(loan_id, LoanPatch(), status=status, closing=closing)

    def add_note(self, loan_id: str, note: LoanNote) -> LoanNote:
        """`POST /v1/loans/{id}/notes`: kept with the loan; the loan itself (version, `updated_at`) is unchanged."""
        with self._lock:
            self.loan(loan_id)
            self._notes.setdefault(loan_id, []).append(note)
            return note

    def notes(self, loan_id: str) -> list[LoanNote]:
        with self._lock:
            return list(self._notes.get(loan_id, []))

    def changed_since(self, since: datetime | None, cursor: str | None, limit: int) -> tuple[list[Loan], str | None]:
        with self._lock:
            ordered = sorted(self._loans.values(), key=lambda loan: (loan.updated_at, loan.id))
        if cursor:
            after = _decode_cursor(cursor)
            ordered = [loan for loan in ordered if (loan.updated_at, loan.id) > after]
        elif since is not None:
            ordered = [loan for loan in ordered if loan.updated_at >= since]  # inclusive: never miss a tie
        page = ordered[:limit]
        more = len(ordered) > limit
        return page, _encode_cursor(page[-1]) if more else None
