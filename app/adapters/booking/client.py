"""The bridge's client for the Booking API v1 (SPEC §8).

Synchronous `httpx.Client`, one per integration, shared by dramatiq worker threads (httpx's connection pool is
thread-safe). The client never retries: a `BookingUnavailable` goes back to the caller's queue, which retries
with back-off and honours `retry_after`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from app.core.contract import (
    API_PREFIX,
    AvailabilityResponse,
    CancelRequest,
    ErrorBody,
    Loan,
    LoanCreate,
    LoanNote,
    LoanPage,
    LoanPatch,
    Place,
    PlaceUpsert,
    utc_iso,
)
from app.platform.metrics import BOOKING_CALLS
from app.platform.settings import require_https_unless_loopback

M = TypeVar("M", bound=BaseModel)


class BookingError(Exception):
    """A Booking API call failed. `message` never contains the api key."""

    def __init__(self, message: str, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class BookingUnavailable(BookingError):
    """Transient: 429, 5xx, connection error or timeout. Retry later (after `retry_after` seconds if given)."""

    def __init__(self, message: str, code: str = "unavailable", status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, code, status)
        self.retry_after = retry_after


class BookingNotFound(BookingError):
    """404: the loan or place does not exist."""


class BookingConflict(BookingError):
    """409: `If-Match` version mismatch (`code == "version_mismatch"`), a closed loan, or a place already taken."""


class BookingRejected(BookingError):
    """Any other 4xx (401 bad key, 422 invalid request, ...): retrying the same request will not help."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or HTTP-date form); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or datetime.now(when.tzinfo)
    return max(0.0, (when - now).total_seconds())


class BookingClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0) -> None:
        try:
            url = httpx.URL(require_https_unless_loopback(base_url))
        except ValueError as e:
            raise ValueError(f"booking base URL {e}") from None
        if not api_key:
            raise ValueError("booking api key is empty")
        self.base_url = str(url).rstrip("/")
        self._api_key = api_key  # only kept to scrub it from any server-provided error text
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"BookingClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "BookingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- places -----------------------------------------------------------------------------------------------

    def upsert_place(self, place: PlaceUpsert) -> Place:
        response = self._request("PUT", f"/places/{_segment(place.email)}", json=_dump(place))
        return _parse(Place, response)

    def deactivate_place(self, email: str) -> None:
        try:
            self._request("DELETE", f"/places/{_segment(email)}")
        except BookingNotFound:
            pass  # unknown or already gone: the wanted end state

    def availability(self, place_ids: Iterable[str], start: datetime, end: datetime,
                     exclude_loan: str | None = None) -> dict[str, bool]:
        ids = list(dict.fromkeys(place_ids))
        if not ids:
            return {}
        params: list[tuple[str, str]] = [("place_id", i) for i in ids]
        params += [("start", utc_iso(start)), ("end", utc_iso(end))]
        if exclude_loan:
            params.append(("exclude_loan", exclude_loan))
        response = self._request("GET", "/availability", params=params)
        return _parse(AvailabilityResponse, response).available

    # -- stores -----------------------------------------------------------------------------------------------

    def get_store(self, store_id: str) -> dict[str, Any]:
        """`GET /v1/stores/{id}` (optional, a contract addition): the store as JSON. Raises `BookingNotFound` with
        code `store_not_found` for an unknown store, and another 404 code (or `BookingRejected` 405) when the
        booking system does not implement the route."""
        response = self._request("GET", f"/stores/{_segment(store_id)}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BookingError(f"GET {API_PREFIX}/stores/{{id}}: the answer is not a JSON object", "invalid_response",
                               response.status_code)
        return body

    # -- loans ------------------------------------------------------------------------------------------------

    def create_loan(self, loan: LoanCreate, idempotency_key: str) -> Loan:
        if not idempotency_key:
            raise ValueError("idempotency_key is required")
        response = self._request("POST", "/loans", json=_dump(loan), headers={"Idempotency-Key": idempotency_key})
        return _parse(Loan, response)

    def patch_loan(self, loan_id: str, patch: LoanPatch, if_match: int | None = None) -> Loan:
        headers = {"If-Match": str(if_match)} if if_match is not None else None
        response = self._request("PATCH", f"/loans/{_segment(loan_id)}", json=_dump(patch), headers=headers)
        return _parse(Loan, response)

    def cancel_loan(self, loan_id: str, reason: str | None = None) -> Loan:
        body = _dump(CancelRequest(reason=reason))
        return _parse(Loan, self._request("POST", f"/loans/{_segment(loan_id)}/cancel", json=body))

    def get_loan(self, loan_id: str) -> Loan:
        return _parse(Loan, self._request("GET", f"/loans/{_segment(loan_id)}"))

    def add_note(self, loan_id: str, note: LoanNote) -> None:
        """Mark a loan (`POST /v1/loans/{id}/notes`, a contract addition: e.g. a room declined its event in Outlook).
        A booking system without notes answers 404 or 405: the mark is dropped (the journal keeps it)."""
        try:
            self._request("POST", f"/loans/{_segment(loan_id)}/notes", json=_dump(note))
        except BookingNotFound:
            pass
        except BookingRejected as e:
            if e.status != 405:
                raise

    def changed_loans(self, since: datetime | None = None) -> Iterator[Loan]:
        """Every loan changed at or after `since` (all loans if None), oldest change first, across pages."""
        params: dict[str, str] = {"changed_since": utc_iso(since)} if since is not None else {}
        while True:
            page = _parse(LoanPage, self._request("GET", "/loans", params=params))
            yield from page.items
            if not page.next_cursor:
                return
            params = {"cursor": page.next_cursor}

    # -- transport --------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        what = f"{method} {API_PREFIX}{path.split('?')[0]}"
        operation = _operation(method, path)
        try:
            response = self._http.request(method, API_PREFIX + path, **kwargs)
        except httpx.TimeoutException as exc:
            BOOKING_CALLS.labels(operation, "0").inc()
            raise BookingUnavailable(f"{what}: timed out ({type(exc).__name__})", "timeout") from exc
        except httpx.TransportError as exc:
            BOOKING_CALLS.labels(operation, "0").inc()
            raise BookingUnavailable(f"{what}: {type(exc).__name__}", "connection_error") from exc
        BOOKING_CALLS.labels(operation, str(response.status_code)).inc()
        if response.is_success:
            return response
        raise self._error(what, response)

    def _error(self, what: str, response: httpx.Response) -> BookingError:
        status = response.status_code
        try:
            detail = ErrorBody.model_validate_json(response.content).error
            code, text = detail.code, detail.message
        except ValidationError:
            code, text = f"http_{status}", response.reason_phrase
        message = self._scrub(f"{what}: {status} {code}: {text}"[:1000])
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return BookingUnavailable(message, code, status, retry_after)
        if status == 404:
            return BookingNotFound(message, code, status)
        if status == 409:
            return BookingConflict(message, code, status)
        return BookingRejected(message, code, status)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


def _operation(method: str, path: str) -> str:
    """The metric label of a call: the path with its identifiers replaced (`PATCH /loans/{id}`), so that the
    number of label values stays bounded."""
    parts = path.split("?")[0].strip("/").split("/")
    named = [part if i % 2 == 0 else "{id}" for i, part in enumerate(parts)]
    return f"{method} /{'/'.join(named)}"


def _segment(value: str) -> str:
    return quote(value, safe="@")


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise BookingError(
            f"{response.request.method} {response.request.url.path}: unexpected response body "
            f"({exc.error_count()} validation errors)",
            "invalid_response",
            response.status_code,
        ) from None
