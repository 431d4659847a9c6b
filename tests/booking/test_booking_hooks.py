"""Reverse hooks from the simulated booking system (SPEC §7), received by a tiny Starlette receiver."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from app.adapters.booking.client import BookingClient
from app.core.contract import HookPayload, LoanPatch, Place
from app.core.signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from simulators.booking import BookingSimulator
from tests.booking.booking_helpers import HOOK_SECRET, T0, HookReceiver, Received, new_loan

HOUR = timedelta(hours=1)
USER = {"email": "bob@contoso.com", "name": "Bob"}


def payload(hook: Received) -> HookPayload:
    verify(HOOK_SECRET, hook.body, hook.headers[SIGNATURE_HEADER.lower()])
    return HookPayload.model_validate_json(hook.body)


def delivery_id(hook: Received) -> str:
    return hook.headers[DELIVERY_HEADER.lower()]


def test_user_changes_send_signed_hooks(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    loan = sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email], assets=["Projector"], status="pending")
    sim.update_loan(loan.id, status="approved")
    sim.update_loan(loan.id, start=T0 + HOUR, end=T0 + 2 * HOUR)
    sim.cancel_loan(loan.id)
    assert sim.wait_idle()
    hooks = receiver.wait_for(4)
    payloads = [payload(h) for h in hooks]
    assert [p.type for p in payloads] == ["loan.created", "loan.updated", "loan.updated", "loan.cancelled"]
    assert [p.loan.version for p in payloads] == [1, 2, 3, 4]
    assert payloads[0].loan.number == loan.number and payloads[0].loan.items[1].name == "Projector"
    assert all(uuid.UUID(delivery_id(h)).version == 4 for h in hooks)
    assert len({delivery_id(h) for h in hooks}) == 4
    assert hooks[0].headers["content-type"] == "application/json"
    assert sim.stats.hooks_sent == sim.stats.hooks_delivered == 4
    assert sim.stats.loan_writes == 0  # user changes are not the bridge's writes


def test_refuse_sends_loan_refused(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    loan = sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    sim.refuse_loan(loan.id)
    sim.refuse_loan(loan.id)  # no change, no hook
    assert sim.wait_idle()
    assert [payload(h).type for h in receiver.wait_for(2)] == ["loan.created", "loan.refused"]
    assert len(receiver.received) == 2


def test_api_changes_send_hooks_too(sim: BookingSimulator, client: BookingClient, receiver: HookReceiver,
                                    room_a: Place) -> None:
    loan = client.create_loan(new_loan(room_a), "k")
    client.create_loan(new_loan(room_a), "k")  # replay: nothing changed, no hook
    client.patch_loan(loan.id, LoanPatch(end=T0 + 2 * HOUR))
    client.patch_loan(loan.id, LoanPatch(end=T0 + 2 * HOUR))  # no change, no hook
    client.cancel_loan(loan.id, "gone")
    assert sim.wait_idle()
    assert [payload(h).type for h in receiver.wait_for(3)] == ["loan.created", "loan.updated", "loan.cancelled"]
    assert len(receiver.received) == 3


def test_no_target_no_hook(sim: BookingSimulator, room_a: Place) -> None:
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle() and sim.stats.hooks_sent == 0


def test_duplicates_with_the_same_delivery_id(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    sim.hooks.duplicate = 3
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle()
    hooks = receiver.wait_for(3)
    assert len({delivery_id(h) for h in hooks}) == 1
    assert len({h.body for h in hooks}) == 1


def test_duplicates_with_new_delivery_ids(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    sim.hooks.duplicate, sim.hooks.duplicate_new_id = 2, True
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle()
    hooks = receiver.wait_for(2)
    assert len({delivery_id(h) for h in hooks}) == 2 and hooks[0].body == hooks[1].body


@pytest.mark.parametrize("order", ["reverse", "shuffle"])
def test_out_of_order(sim: BookingSimulator, receiver: HookReceiver, room_a: Place, order: str) -> None:
    sim.hooks.hold()
    loan = sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    for status in ("pending", "approved", "returned"):
        sim.update_loan(loan.id, status=status)
    assert sim.wait_idle() and receiver.received == []
    assert sim.hooks.release(order) == 4
    assert sim.wait_idle()
    versions = [payload(h).loan.version for h in receiver.wait_for(4)]
    assert sorted(versions) == [1, 2, 3, 4]
    if order == "reverse":
        assert versions == [4, 3, 2, 1]


def test_late_delivery(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    sim.hooks.delay = 0.4
    changed_at = time.monotonic()
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert receiver.received == []
    hook = receiver.wait_for(1)[0]
    assert hook.at - changed_at >= 0.4


def test_hook_delivered_before_the_api_response(sim: BookingSimulator, client: BookingClient,
                                                receiver: HookReceiver, room_a: Place) -> None:
    sim.hooks.before_response = True
    loan = client.create_loan(new_loan(room_a), "k")
    assert [payload(h).loan.id for h in receiver.received] == [loan.id]  # already there: no waiting
    client.patch_loan(loan.id, LoanPatch(end=T0 + 2 * HOUR))
    assert [payload(h).type for h in receiver.received] == ["loan.created", "loan.updated"]


def test_failed_deliveries_are_retried(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    receiver.statuses = [500, 503]
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle()
    hooks = receiver.wait_for(3)
    assert len({delivery_id(h) for h in hooks}) == 1  # a retry is the same delivery
    (delivery,) = sim.hooks.deliveries
    assert delivery.ok and delivery.attempts == 3 and delivery.status == 202
    assert (sim.stats.hooks_sent, sim.stats.hooks_delivered, sim.stats.hooks_failed) == (3, 1, 0)


def test_rejected_delivery_is_not_retried(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    receiver.statuses = [401]
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle()
    assert len(receiver.received) == 1 and sim.stats.hooks_failed == 1


def test_unreachable_target_gives_up(sim: BookingSimulator, room_a: Place) -> None:
    dead = HookReceiver().start()
    sim.set_hook_target(dead.url, HOOK_SECRET)
    dead.stop()
    sim.hooks.max_attempts, sim.hooks.retry_backoff = 3, 0.01
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle()
    (delivery,) = sim.hooks.deliveries
    assert delivery.attempts == 3 and not delivery.ok and delivery.status is None
    assert sim.stats.hooks_failed == 1


def test_dropped_hooks(sim: BookingSimulator, receiver: HookReceiver, room_a: Place) -> None:
    sim.hooks.drop = True
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle() and sim.stats.hooks_sent == 0


@pytest.mark.parametrize("offset", [-301, 301])
def test_send_hook_with_a_stale_timestamp(sim: BookingSimulator, receiver: HookReceiver, room_a: Place,
                                          offset: int) -> None:
    loan = sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle()
    delivery = sim.send_hook(loan.id, timestamp_offset=offset)
    assert delivery.status == 202
    stale = receiver.wait_for(2)[1]
    with pytest.raises(SignatureError, match="stale"):
        verify(HOOK_SECRET, stale.body, stale.headers[SIGNATURE_HEADER.lower()])


def test_send_hook_with_a_wrong_secret_or_a_replayed_id(sim: BookingSimulator, receiver: HookReceiver,
                                                        room_a: Place) -> None:
    loan = sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle()
    first = receiver.wait_for(1)[0]
    sim.send_hook(loan.id, secret="not-the-secret")
    sim.send_hook(loan.id, "loan.created", delivery_id=delivery_id(first))
    wrong, replay = receiver.wait_for(3)[1:]
    with pytest.raises(SignatureError, match="invalid"):
        verify(HOOK_SECRET, wrong.body, wrong.headers[SIGNATURE_HEADER.lower()])
    assert delivery_id(replay) == delivery_id(first) and payload(replay).type == "loan.created"


def test_send_hook_needs_a_target(sim: BookingSimulator, room_a: Place) -> None:
    loan = sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    with pytest.raises(RuntimeError):
        sim.send_hook(loan.id)


def test_wait_idle_times_out_while_a_hook_is_late(sim: BookingSimulator, receiver: HookReceiver,
                                                  room_a: Place) -> None:
    sim.hooks.delay = 0.5
    sim.create_loan(USER, T0, T0 + HOUR, places=[room_a.email])
    assert sim.wait_idle(timeout=0.1) is False
    assert sim.wait_idle(timeout=60)
