"""The bridge's BookingClient against the simulated booking system, over real HTTP."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.adapters.booking.client import (
    BookingClient,
    BookingConflict,
    BookingError,
    BookingNotFound,
    BookingRejected,
    BookingUnavailable,
    parse_retry_after,
)
from app.core.contract import LoanPatch, Place, PlaceUpsert, Requester
from simulators.booking import BookingSimulator
from simulators.server import ServerThread
from tests.booking.booking_helpers import API_KEY, T0, new_loan

HOUR = timedelta(hours=1)

# -- construction ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "https://b.example.com"])
def test_accepted_base_urls(url: str) -> None:
    BookingClient(url, "k").close()


@pytest.mark.parametrize("url", ["http://booking.example.com", "http://10.0.0.5", "ftp://127.0.0.1", "/v1"])
def test_plain_http_only_for_loopback(url: str) -> None:
    with pytest.raises(ValueError):
        BookingClient(url, "k")


def test_api_key_not_in_repr(client: BookingClient) -> None:
    assert API_KEY not in repr(client)


# -- places ---------------------------------------------------------------------------------------------------


def test_upsert_place_creates_then_updates_with_a_stable_id(sim: BookingSimulator, client: BookingClient) -> None:
    first = client.upsert_place(PlaceUpsert(email="Room-A@Contoso.com", name="Room A", capacity=8, floor=2,
                                            working_hours={"days": ["monday"], "start": "08:00", "end": "18:00"},
                                            time_zone="Europe/Paris", tags=["Video"]))
    assert first.id and first.email == "room-a@contoso.com" and first.floor == "2" and first.active
    second = client.upsert_place(PlaceUpsert(email="room-a@contoso.com", name="Room A (renamed)"))
    assert second.id == first.id and second.name == "Room A (renamed)"
    assert list(sim.places) == ["room-a@contoso.com"]
    assert sim.stats.places_upserted == 2


def test_upsert_status_codes(sim: BookingSimulator) -> None:
    body = {"email": "room-z@contoso.com", "name": "Z"}
    url, headers = f"{sim.base_url}/v1/places/room-z@contoso.com", {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.put(url, json=body, headers=headers).status_code == 201
    assert httpx.put(url, json=body, headers=headers).status_code == 200
    mismatch = httpx.put(url, json={**body, "email": "other@contoso.com"}, headers=headers)
    assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "email_mismatch"


def test_deactivate_place(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    client.deactivate_place("ROOM-A@contoso.com")
    assert sim.places["room-a@contoso.com"].active is False
    client.deactivate_place("nobody@contoso.com")  # 404 counts as done
    reactivated = client.upsert_place(PlaceUpsert(email=room_a.email, name=room_a.name))
    assert reactivated.active and reactivated.id == room_a.id


# -- availability ---------------------------------------------------------------------------------------------


def test_availability(sim: BookingSimulator, client: BookingClient, room_a: Place, room_b: Place) -> None:
    loan = client.create_loan(new_loan(room_a), "k-1")  # T0 .. T0+1h
    assert client.availability([room_a.id, room_b.id], T0, T0 + HOUR) == {room_a.id: False, room_b.id: True}
    # Half-open intervals: back-to-back slots are free.
    assert client.availability([room_a.id], T0 + HOUR, T0 + 2 * HOUR) == {room_a.id: True}
    assert client.availability([room_a.id], T0 - HOUR, T0) == {room_a.id: True}
    assert client.availability([room_a.id], T0 + HOUR / 2, T0 + 2 * HOUR) == {room_a.id: False}
    assert client.availability([room_a.id], T0, T0 + HOUR, exclude_loan=loan.id) == {room_a.id: True}
    sim.block(room_b.email, T0 + HOUR / 2, T0 + HOUR)
    assert client.availability([room_b.id], T0, T0 + HOUR) == {room_b.id: False}
    client.cancel_loan(loan.id, "moved")
    assert client.availability([room_a.id], T0, T0 + HOUR) == {room_a.id: True}
    assert sim.stats.availability_calls == 7


def test_availability_of_unknown_or_inactive_places_is_false(client: BookingClient, room_a: Place) -> None:
    client.deactivate_place(room_a.email)
    assert client.availability([room_a.id, "pl_unknown"], T0, T0 + HOUR) == {room_a.id: False, "pl_unknown": False}


def test_availability_counts_pending_and_approved_but_not_closed(sim: BookingSimulator, client: BookingClient,
                                                                  room_a: Place) -> None:
    user = {"email": "bob@contoso.com", "name": "Bob"}
    for status in ("pending", "approved", "refused", "returned", "cancelled"):
        loan = sim.create_loan(user, T0, T0 + HOUR, places=[room_a.email], status=status)
        free = status in ("refused", "returned", "cancelled")
        assert client.availability([room_a.id], T0, T0 + HOUR) == {room_a.id: free}, status
        if not free:
            sim.cancel_loan(loan.id)


def test_availability_with_no_place_skips_the_call(sim: BookingSimulator, client: BookingClient) -> None:
    assert client.availability([], T0, T0 + HOUR) == {}
    assert sim.stats.requests == 0


def test_availability_validation(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    with pytest.raises(BookingRejected) as info:
        client.availability([room_a.id], T0, T0)
    assert info.value.status == 422 and info.value.code == "invalid_interval"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for query in ("start=2030-01-01T00:00:00Z&end=2030-01-02T00:00:00Z", f"place_id={room_a.id}&start=x&end=y",
                  f"place_id={room_a.id}&start=2030-01-01T00:00:00&end=2030-01-02T00:00:00"):
        answer = httpx.get(f"{sim.base_url}/v1/availability?{query}", headers=headers)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request", query


def test_naive_datetimes_are_refused_before_any_call(client: BookingClient, room_a: Place) -> None:
    with pytest.raises(ValueError):
        client.availability([room_a.id], datetime(2030, 1, 1), datetime(2030, 1, 2))


# -- loans ----------------------------------------------------------------------------------------------------


def test_create_and_get_loan(sim: BookingSimulator, client: BookingClient, room_a: Place, room_b: Place) -> None:
    loan = client.create_loan(new_loan(room_a, room_b), "key-1")
    assert loan.number == "PR-1001" and loan.status == "new" and loan.version == 1
    assert loan.url == f"{sim.base_url}/loans/{loan.id}"
    assert [(i.kind, i.id, i.place_email) for i in loan.items] == [
        ("place", room_a.id, room_a.email), ("place", room_b.id, room_b.email)]
    assert loan.origin is not None and loan.origin.ref == "ical-1"
    assert loan.start == T0 and loan.start.tzinfo is not None
    assert client.get_loan(loan.id) == loan
    assert sim.loan(loan.id) == loan
    assert client.create_loan(new_loan(room_a, start=T0 + 2 * HOUR), "key-2").number == "PR-1002"


def test_times_are_sent_in_utc_with_an_offset(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    paris = datetime(2030, 3, 4, 11, 0, tzinfo=ZoneInfo("Europe/Paris"))
    loan = client.create_loan(new_loan(room_a, start=paris), "k")
    assert loan.start == datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
    raw = httpx.get(f"{sim.base_url}/v1/loans/{loan.id}", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert raw["start"] == "2030-03-04T10:00:00+00:00"


def test_idempotency_key_reuse_gives_the_same_loan(sim: BookingSimulator, client: BookingClient,
                                                   room_a: Place) -> None:
    first = client.create_loan(new_loan(room_a), "ical-1/occurrence")
    again = client.create_loan(new_loan(room_a), "ical-1/occurrence")
    assert again == first and len(sim.loans) == 1
    assert (sim.stats.loans_created, sim.stats.create_replays) == (1, 1)
    assert sim.stats.creates_by_key == {"ical-1/occurrence": 2}


def test_idempotency_replay_returns_200_with_the_current_state(sim: BookingSimulator, client: BookingClient,
                                                              room_a: Place) -> None:
    body = new_loan(room_a).model_dump(mode="json")
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k"}
    assert httpx.post(f"{sim.base_url}/v1/loans", json=body, headers=headers).status_code == 201
    loan_id = next(iter(sim.loans))
    sim.update_loan(loan_id, status="approved")
    replay = httpx.post(f"{sim.base_url}/v1/loans", json=body, headers=headers)
    assert replay.status_code == 200 and replay.json()["status"] == "approved"


def test_idempotency_key_with_a_different_body_is_rejected(sim: BookingSimulator, client: BookingClient,
                                                           room_a: Place) -> None:
    client.create_loan(new_loan(room_a), "k")
    with pytest.raises(BookingRejected) as info:
        client.create_loan(new_loan(room_a, hours=2), "k")
    assert info.value.status == 422 and info.value.code == "idempotency_key_reused"
    assert len(sim.loans) == 1


def test_concurrent_creates_with_one_key_make_one_loan(sim: BookingSimulator, client: BookingClient,
                                                       room_a: Place) -> None:
    results: list[str] = []

    def create() -> None:
        results.append(client.create_loan(new_loan(room_a), "same-key").id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8 and len(sim.loans) == 1


def test_missing_idempotency_key_is_rejected(sim: BookingSimulator, room_a: Place) -> None:
    answer = httpx.post(f"{sim.base_url}/v1/loans", json=new_loan(room_a).model_dump(mode="json"),
                        headers={"Authorization": f"Bearer {API_KEY}"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "idempotency_key_required"


def test_create_on_a_taken_place_conflicts(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    sim.block(room_a.email, T0, T0 + HOUR)
    with pytest.raises(BookingConflict) as info:
        client.create_loan(new_loan(room_a), "k")
    assert info.value.code == "place_unavailable" and room_a.id in info.value.message


def test_create_validation(client: BookingClient, room_a: Place) -> None:
    with pytest.raises(BookingRejected) as info:
        client.create_loan(new_loan(room_a, hours=0), "k")
    assert info.value.code == "invalid_interval"
    with pytest.raises(BookingRejected) as info:
        client.create_loan(new_loan(Place(id="pl_nope", email="x@contoso.com", name="X")), "k2")
    assert info.value.code == "unknown_place"


def test_patch_loan_versions_and_if_match(sim: BookingSimulator, client: BookingClient, room_a: Place,
                                          room_b: Place) -> None:
    loan = client.create_loan(new_loan(room_a), "k")
    moved = client.patch_loan(loan.id, LoanPatch(start=T0 + HOUR, end=T0 + 2 * HOUR), if_match=1)
    assert moved.version == 2 and moved.updated_at > loan.updated_at and moved.start == T0 + HOUR
    with pytest.raises(BookingConflict) as info:
        client.patch_loan(loan.id, LoanPatch(end=T0 + 3 * HOUR), if_match=1)
    assert info.value.status == 409 and info.value.code == "version_mismatch"
    same = client.patch_loan(loan.id, LoanPatch(start=T0 + HOUR))  # no change: no new version
    assert same.version == 2
    rooms = client.patch_loan(loan.id, LoanPatch(items=[{"id": room_b.id}],
                                                 requester=Requester(email="b@contoso.com", name="B")))
    assert rooms.version == 3 and rooms.place_ids == [room_b.id] and rooms.requester.name == "B"
    assert sim.stats.loans_patched == 3


def test_patch_keeps_assets_and_checks_places(sim: BookingSimulator, client: BookingClient, room_a: Place,
                                              room_b: Place) -> None:
    loan = sim.create_loan({"email": "u@contoso.com", "name": "U"}, T0, T0 + HOUR, places=[room_a.email],
                           assets=["Projector"])
    sim.block(room_b.email, T0, T0 + HOUR)
    with pytest.raises(BookingConflict) as info:
        client.patch_loan(loan.id, LoanPatch(items=[{"id": room_b.id}]))
    assert info.value.code == "place_unavailable"
    with pytest.raises(BookingRejected):
        client.patch_loan(loan.id, LoanPatch(start=T0 + 2 * HOUR))  # would end before it starts
    # The loan's own slot never makes it unavailable to itself.
    patched = client.patch_loan(loan.id, LoanPatch(end=T0 + 2 * HOUR))
    assert [i.name for i in patched.items if i.kind == "asset"] == ["Projector"]


def test_patch_on_a_closed_loan_conflicts(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    loan = client.create_loan(new_loan(room_a), "k")
    sim.refuse_loan(loan.id)
    with pytest.raises(BookingConflict) as info:
        client.patch_loan(loan.id, LoanPatch(end=T0 + 2 * HOUR))
    assert info.value.code == "loan_closed"
    with pytest.raises(BookingConflict):
        client.cancel_loan(loan.id, "too late")


def test_cancel_loan_is_idempotent(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    loan = client.create_loan(new_loan(room_a), "k")
    cancelled = client.cancel_loan(loan.id, "meeting cancelled in Outlook")
    assert cancelled.status == "cancelled" and cancelled.version == 2
    assert client.cancel_loan(loan.id, "again").version == 2
    assert sim.stats.loans_cancelled == 2 and sim.stats.loan_writes == 3


def test_unknown_loan_is_not_found(client: BookingClient) -> None:
    for call in (lambda: client.get_loan("ln_nope"), lambda: client.cancel_loan("ln_nope", "x"),
                 lambda: client.patch_loan("ln_nope", LoanPatch(end=T0))):
        with pytest.raises(BookingNotFound) as info:
            call()
        assert info.value.status == 404 and info.value.code == "loan_not_found"


def test_changed_since_pages(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    user = {"email": "u@contoso.com", "name": "U"}
    loans = [sim.create_loan(user, T0 + i * HOUR, T0 + (i + 1) * HOUR, places=[room_a.email]) for i in range(230)]
    requests_before = sim.stats.requests
    everything = list(client.changed_loans(None))
    assert [loan.id for loan in everything] == [loan.id for loan in loans]
    assert sim.stats.requests - requests_before == 3  # 100 + 100 + 30
    mark = datetime.now(UTC)
    time.sleep(0.01)
    touched = [sim.update_loan(loans[i].id, status="approved") for i in (5, 150, 7)]
    changed = list(client.changed_loans(mark))
    assert [loan.id for loan in changed] == [loan.id for loan in touched]
    assert all(loan.status == "approved" for loan in changed)


def test_changed_since_is_inclusive_and_stable_under_changes(sim: BookingSimulator, room_a: Place) -> None:
    user = {"email": "u@contoso.com", "name": "U"}
    loans = [sim.create_loan(user, T0 + i * HOUR, T0 + (i + 1) * HOUR, places=[room_a.email]) for i in range(5)]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    since = loans[2].updated_at.isoformat()
    page = httpx.get(f"{sim.base_url}/v1/loans", params={"changed_since": since, "limit": 2}, headers=headers).json()
    assert [item["id"] for item in page["items"]] == [loans[2].id, loans[3].id] and page["next_cursor"]
    sim.update_loan(loans[0].id, status="approved")  # moves to the end while we page
    rest = httpx.get(f"{sim.base_url}/v1/loans", params={"cursor": page["next_cursor"], "limit": 2},
                     headers=headers).json()
    assert [item["id"] for item in rest["items"]] == [loans[4].id, loans[0].id] and rest["next_cursor"] is None
    for cursor in ("!!", base64.urlsafe_b64encode(b'["2030-01-01T00:00:00", "x"]').decode(),
                   base64.urlsafe_b64encode(b"7").decode()):
        bad = httpx.get(f"{sim.base_url}/v1/loans", params={"cursor": cursor}, headers=headers)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor", cursor


# -- errors ---------------------------------------------------------------------------------------------------


def test_wrong_api_key_is_rejected_without_leaking_it(sim: BookingSimulator) -> None:
    secret = "wrong-key-which-must-not-leak"
    with BookingClient(sim.base_url, secret) as bad:
        with pytest.raises(BookingRejected) as info:
            bad.get_loan("ln_x")
    assert info.value.status == 401 and info.value.code == "unauthorized"
    assert secret not in str(info.value) and secret not in repr(info.value)
    raw = httpx.get(f"{sim.base_url}/v1/loans")
    assert raw.status_code == 401 and raw.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("status", [429, 503])
def test_throttled_or_unavailable_with_retry_after(sim: BookingSimulator, client: BookingClient, room_a: Place,
                                                  status: int) -> None:
    sim.inject(status=status, count=2, retry_after=2)
    for _ in range(2):
        with pytest.raises(BookingUnavailable) as info:
            client.get_loan("ln_x")
        assert info.value.status == status and info.value.retry_after == 2.0
    with pytest.raises(BookingNotFound):  # the fault budget is spent
        client.get_loan("ln_x")
    assert sim.stats.faults_injected == 2


def test_server_error_is_unavailable(sim: BookingSimulator, client: BookingClient) -> None:
    sim.inject(status=500)
    with pytest.raises(BookingUnavailable) as info:
        client.changed_loans(None).__next__()
    assert info.value.status == 500 and info.value.retry_after is None


def test_down_then_up(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    loan = client.create_loan(new_loan(room_a), "k")
    sim.down()
    assert sim.is_down
    with pytest.raises(BookingUnavailable) as info:
        client.get_loan(loan.id)
    assert info.value.code == "connection_error" and info.value.retry_after is None
    sim.up()
    assert client.get_loan(loan.id) == loan  # same port, same state


def test_down_for_a_while(sim: BookingSimulator, client: BookingClient) -> None:
    sim.down(seconds=0.3)
    with pytest.raises(BookingUnavailable):
        client.availability(["pl_x"], T0, T0 + HOUR)
    deadline = time.monotonic() + 60
    while sim.is_down and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.availability(["pl_x"], T0, T0 + HOUR) == {"pl_x": False}


def test_timeout_is_unavailable(sim: BookingSimulator) -> None:
    sim.latency = 0.5
    with BookingClient(sim.base_url, API_KEY, timeout=0.1) as slow:
        with pytest.raises(BookingUnavailable) as info:
            slow.get_loan("ln_x")
    assert info.value.code == "timeout"


def test_api_key_never_in_error_messages(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    errors: list[BookingError] = []
    for action in (lambda: client.get_loan("ln_x"),
                   lambda: (sim.inject(503, retry_after=1), client.get_loan("ln_x")),
                   lambda: (sim.down(), client.get_loan("ln_x"))):
        try:
            action()
        except BookingError as exc:
            errors.append(exc)
    sim.up()
    assert len(errors) == 3
    for exc in errors:
        assert API_KEY not in str(exc) and API_KEY not in repr(exc) and API_KEY not in exc.message


def test_invalid_response_body_is_a_booking_error() -> None:
    async def not_a_loan(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    app = Starlette(routes=[Route("/v1/loans/{loan_id}", not_a_loan)])
    with ServerThread(app) as server, BookingClient(server.base_url, API_KEY) as odd:
        with pytest.raises(BookingError) as info:
            odd.get_loan("ln_1")
    assert type(info.value) is BookingError and info.value.code == "invalid_response"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), ("0.5", 0.5), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:05 GMT", 5.0)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


# -- robustness: every answer is JSON, never a 500 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/loans", b"{not json", 422),
        ("POST", "/v1/loans", b"[]", 422),
        ("POST", "/v1/loans", b'{"requester": 1, "start": "x"}', 422),
        ("POST", "/v1/loans", b'{"requester": {"email": "a@b.c", "name": "A"}, "start": "2030-01-01T00:00:00",'
                              b' "end": "2030-01-01T01:00:00", "store_id": "s", "items": [{"id": "p"}]}', 422),
        ("POST", "/v1/loans", "\udcff".encode("utf-8", "surrogatepass"), 422),
        ("PUT", "/v1/places/room@contoso.com", b'{"email": "room@contoso.com", "name": "", "capacity": -1}', 422),
        ("PUT", "/v1/places/room@contoso.com", b"", 422),
        ("PATCH", "/v1/loans/ln_x", b'{"start": "soon"}', 422),
        ("POST", "/v1/loans/ln_x/cancel", b'{"reason": []}', 422),
        ("GET", "/v1/loans?limit=0", b"", 422),
        ("GET", "/v1/loans?limit=abc", b"", 422),
        ("GET", "/v1/loans?changed_since=yesterday", b"", 422),
        ("GET", "/v1/loans?changed_since=0001-01-01T00:00:00%2B01:00", b"", 422),
        ("GET", "/v1/availability?place_id=p&start=9999-12-31T23:00:00-05:00&end=9999-12-31T23:30:00-05:00", b"",
         422),
        ("GET", "/v1/nothing-here", b"", 404),
        ("DELETE", "/v1/loans", b"", 405),
    ],
)
def test_bad_requests_get_json_errors(sim: BookingSimulator, method: str, path: str, body: bytes,
                                      status: int) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k", "Content-Type": "application/json"}
    answer = httpx.request(method, f"{sim.base_url}{path}", content=body, headers=headers)
    assert answer.status_code == status
    assert set(answer.json()["error"]) == {"code", "message"}


def test_if_match_must_be_a_version(sim: BookingSimulator, client: BookingClient, room_a: Place) -> None:
    loan = client.create_loan(new_loan(room_a), "k")
    url, auth = f"{sim.base_url}/v1/loans/{loan.id}", {"Authorization": f"Bearer {API_KEY}"}
    body = {"end": (T0 + 2 * HOUR).isoformat()}
    bad = httpx.patch(url, json=body, headers={**auth, "If-Match": "abc"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_if_match"
    assert httpx.patch(url, json=body, headers={**auth, "If-Match": '"1"'}).json()["version"] == 2


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries({}, optional={
    "requester": _JSON, "start": st.text(max_size=30) | _JSON, "end": st.text(max_size=30), "items": _JSON,
    "store_id": _JSON, "email": _JSON, "name": _JSON, "status": _JSON, "reason": _JSON, "capacity": _JSON,
})


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_JSON | _FIELDS, target=st.sampled_from([
    ("POST", "/v1/loans"), ("PUT", "/v1/places/room@contoso.com"), ("PATCH", "/v1/loans/{loan}"),
    ("POST", "/v1/loans/{loan}/cancel"),
]))
def test_random_bodies_never_cause_a_server_error(sim: BookingSimulator, client: BookingClient, room_a: Place,
                                                  body: object, target: tuple[str, str]) -> None:
    loan_id = next(iter(sim.loans), None) or client.create_loan(new_loan(room_a), "fuzz").id
    method, path = target
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "fuzz-key"}
    answer = httpx.request(method, sim.base_url + path.format(loan=loan_id), json=body, headers=headers)
    assert answer.status_code < 500, answer.text
    assert answer.headers["content-type"] == "application/json"
