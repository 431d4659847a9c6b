"""SPEC §4 subscriptions against the simulated Graph over HTTP: renewal at half-life, 404 on renew, 409 on create,
lifecycle events (case 12), expiry while down (case 13), polling fallback. "Reconcile the room" is asserted as the
`reconcile_room` job being enqueued; its effect belongs to tests/test_reconcile*.py."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session

from app.adapters.graph.errors import (
    GraphAuthError,
    GraphConflict,
    GraphError,
    GraphNotFound,
    GraphThrottled,
)
from app.platform.models import Room, Subscription, utcnow
from app.sync import subscriptions
from app.sync.subscriptions import (
    LIFETIME,
    PATCH_GAP,
    patch_wait,
    refusal_means_polling,
    renewal_due,
    same_resource,
)
from app.workers import actors
from app.workers.scheduler import Memo, due_work, tick
from simulators.graph.errors import GraphError as SimGraphError
from tests.conftest import ADMIN_TOKEN
from tests.test_rooms_import import JUPITER, SATURNE, Live, live_fixture, stack_urls_fixture  # noqa: F401  (fixtures)

NOW = utcnow()


# --- pure rules -----------------------------------------------------------------------------------------------------


def test_renewal_is_due_once_less_than_half_the_lifetime_is_left() -> None:
    start = NOW - timedelta(days=3)
    assert not renewal_due(start, start + timedelta(days=7), NOW)  # 4 of 7 days left
    assert renewal_due(start, start + timedelta(days=6), NOW + timedelta(seconds=1))  # just under 3 of 6 left
    assert renewal_due(start, NOW - timedelta(minutes=1), NOW)  # expired: due (it gets replaced)


def test_no_patch_within_ten_minutes_of_a_renewal_or_reauthorization() -> None:
    assert patch_wait(None, None, NOW) == timedelta(0)
    assert patch_wait(NOW - timedelta(minutes=4), None, NOW) == timedelta(minutes=6)
    assert patch_wait(None, NOW - timedelta(minutes=9), NOW) == timedelta(minutes=1)
    assert patch_wait(NOW - timedelta(minutes=30), NOW - timedelta(minutes=2), NOW) == timedelta(minutes=8)
    assert patch_wait(NOW - PATCH_GAP, None, NOW) == timedelta(0)


def test_which_refusals_mean_polling() -> None:
    assert refusal_means_polling(GraphAuthError("denied", 403))  # e.g. an application access policy, quota
    assert refusal_means_polling(GraphError("bad", 400)) and refusal_means_polling(GraphNotFound("gone", 404))
    assert not refusal_means_polling(GraphAuthError("bad secret", 401))  # every room would fail: not this room
    assert not refusal_means_polling(GraphConflict("exists", 409))
    assert not refusal_means_polling(GraphThrottled("slow down", 2.0, 429))
    assert not refusal_means_polling(GraphThrottled("unreachable", 5.0))
    assert not refusal_means_polling(GraphError("boom", 500))


def test_resources_compare_in_any_casing() -> None:
    assert same_resource("/users/AB-1/events", "Users/ab-1/Events")
    assert not same_resource("/users/ab-1/events", "/users/ab-2/events")


# --- against the simulated Graph ------------------------------------------------------------------------------------


def _patches(live: Live) -> int:
    return live.sandbox.graph.stats.requests[("PATCH", "subscription")]


def test_renewal_at_half_life_patches_and_stores_the_new_expiry(live: Live) -> None:
    live.import_and_subscribe()
    [sub] = live.subs(JUPITER)
    # Created 5 days ago for 7: due. The scheduler finds it from the database alone.
    live.update(Subscription, sub.id, created_at=utcnow() - timedelta(days=5), expires_at=utcnow() + timedelta(days=2))
    with Session(live.rt.engine) as s:
        assert due_work(s, utcnow()).renewals == [sub.id]
    live.clear()
    assert tick(live.rt, Memo())["renew"] == 1
    assert live.run("renew_subscription") == 1

    assert _patches(live) == 1
    [renewed] = live.subs(JUPITER)
    assert renewed.id == sub.id and renewed.renewed_at is not None
    assert renewed.expires_at > utcnow() + LIFETIME - timedelta(minutes=5)
    graph_expiry = live.sandbox.graph.subscriptions[sub.id]["expirationDateTime"]
    assert graph_expiry.startswith(renewed.expires_at.strftime("%Y-%m-%dT%H:%M"))
    with Session(live.rt.engine) as s:
        assert due_work(s, utcnow()).renewals == []


def test_404_on_renew_creates_a_new_subscription_and_reconciles_the_room(live: Live) -> None:
    live.import_and_subscribe()
    [old] = live.subs(JUPITER)
    live.sandbox.graph.backend.subscriptions.delete(old.id)  # Graph forgot it
    live.clear()

    actors.dispatch(subscriptions.renew(live.rt, old.id))

    [new] = live.subs(JUPITER)
    assert new.id != old.id and new.id in live.sandbox.graph.subscriptions
    assert [s.id for s in live.subs(JUPITER, "removed")] == [old.id]
    [job] = live.messages("reconcile_room")
    assert job["args"][0] == live.room(JUPITER).id


def test_409_on_create_adopts_the_existing_subscription(live: Live) -> None:
    live.import_and_subscribe()
    [orphan] = live.subs(JUPITER)
    # As after a crash between Graph's answer and our commit: Graph has it, the database does not.
    with Session(live.rt.engine) as s:
        s.delete(s.get(Subscription, orphan.id))
        s.commit()
    live.clear()

    new_id, followups = subscriptions.ensure_subscription(live.rt, live.room(JUPITER).id)
    actors.dispatch(followups)

    graph_subs = live.sandbox.graph.subscriptions
    assert new_id != orphan.id and orphan.id not in graph_subs and new_id in graph_subs
    assert [s.id for s in live.subs(JUPITER)] == [new_id]
    assert live.count("reconcile_room") == 1  # notifications of the orphan were refused: re-read the calendar
    assert any(e.action == "adopt" and orphan.id in e.message for e in live.journal("ok"))


def test_case_12_subscription_removed_gives_a_new_subscription_and_a_reconcile(live: Live) -> None:
    live.import_and_subscribe()
    [old] = live.subs(JUPITER)
    live.clear()
    live.sandbox.graph.send_lifecycle(old.id, "subscriptionRemoved")
    assert live.sandbox.graph.wait_idle(60)
    assert live.run("handle_lifecycle") == 1

    [new] = live.subs(JUPITER)
    assert new.id != old.id and set(live.sandbox.graph.subscriptions) >= {new.id}
    assert old.id not in live.sandbox.graph.subscriptions
    [job] = live.messages("reconcile_room")
    assert job["args"][0] == live.room(JUPITER).id


def test_case_12_missed_reconciles_the_room(live: Live) -> None:
    live.import_and_subscribe()
    [sub] = live.subs(SATURNE)
    live.clear()
    live.sandbox.graph.send_lifecycle(sub.id, "missed")
    assert live.sandbox.graph.wait_idle(60)
    assert live.run("handle_lifecycle") == 1
    [job] = live.messages("reconcile_room")
    assert job["args"][0] == live.room(SATURNE).id
    assert [s.id for s in live.subs(SATURNE)] == [sub.id] and _patches(live) == 0


def test_case_12_reauthorization_required_renews_but_never_twice_within_ten_minutes(live: Live) -> None:
    live.import_and_subscribe()
    [sub] = live.subs(JUPITER)
    live.clear()
    live.sandbox.graph.send_lifecycle(sub.id, "reauthorizationRequired")
    assert live.sandbox.graph.wait_idle(60)
    assert live.run("handle_lifecycle") == 1
    assert _patches(live) == 1
    [row] = live.subs(JUPITER)
    assert row.reauthorized_at is not None and row.renewed_at == row.reauthorized_at

    # A second challenge two minutes later: no PATCH now, one deferred to when the 10 minutes are over.
    live.sandbox.graph.send_lifecycle(sub.id, "reauthorizationRequired")
    assert live.sandbox.graph.wait_idle(60)
    live.run("handle_lifecycle")
    assert _patches(live) == 1
    [deferred] = live.messages("renew_subscription")
    assert deferred["args"] == [sub.id, True]
    assert 9 * 60_000 < deferred["options"]["eta"] - deferred["message_timestamp"] <= 10 * 60_000

    # When it runs, 10 minutes later, it may PATCH.
    earlier = row.renewed_at - PATCH_GAP
    live.update(Subscription, sub.id, renewed_at=earlier, reauthorized_at=earlier)
    live.run("renew_subscription")
    assert _patches(live) == 2


def test_unknown_lifecycle_event_is_logged_never_fatal(live: Live) -> None:
    live.import_and_subscribe()
    [sub] = live.subs(JUPITER)
    live.clear()
    assert subscriptions.handle_lifecycle(live.rt, sub.id, "somethingNew") == []
    subscriptions.handle_lifecycle(live.rt, "no-such-subscription", "missed")
    assert live.messages() == [] and _patches(live) == 0


def test_case_13_subscription_expired_while_down_is_recreated_at_start(live: Live) -> None:
    live.import_and_subscribe()
    [old] = live.subs(JUPITER)
    live.sandbox.graph.expire_subscription(old.id)
    live.update(Subscription, old.id, expires_at=utcnow() - timedelta(hours=1))
    live.clear()

    # The scheduler's first tick (at `roombridge scheduler` start, or `serve` start in embedded mode).
    tick(live.rt, Memo())
    assert live.run("renew_subscription") == 1

    [new] = live.subs(JUPITER)
    assert new.id != old.id and new.id in live.sandbox.graph.subscriptions
    assert _patches(live) == 0  # an expired subscription is not renewed: Graph has deleted it
    assert live.count("reconcile_room") == 1
    assert live.messages("reconcile_room")[0]["args"][0] == live.room(JUPITER).id


def test_polling_fallback_when_graph_refuses_a_room(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = live.sandbox.graph.user_id(SATURNE)
    sim_subs = live.sandbox.graph.backend.subscriptions
    create = sim_subs.create

    async def refusing(payload, app):  # as an application access policy excluding this mailbox would
        if refused in payload.get("resource", ""):
            raise SimGraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return await create(payload, app)

    monkeypatch.setattr(sim_subs, "create", refusing)
    live.import_and_subscribe()

    room = live.room(SATURNE)
    assert room.polling and live.subs(SATURNE) == [] and not live.room(JUPITER).polling
    assert any(e.status == "error" and SATURNE in e.message for e in live.journal())
    assert [m["args"][0] for m in live.messages("reconcile_room")] == [room.id]
    readyz = httpx.get(f"{live.base_url}/readyz").json()
    assert readyz["status"] == "ready" and readyz["polled_rooms"] == [SATURNE]
    status = httpx.get(f"{live.base_url}/api/integrations/{live.integration_id}/status",
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert status["rooms"] == {"active": 2, "polled": [SATURNE]}

    # The scheduler reconciles it every few minutes and retries subscribing it now and then.
    with Session(live.rt.engine) as s:
        due = due_work(s, utcnow())
    assert due.poll == [room.id] and due.retry_polling == [room.id] and room.id not in due.subscribe
    live.update(Room, room.id, reconciled_at=utcnow() - timedelta(minutes=1))
    with Session(live.rt.engine) as s:
        assert due_work(s, utcnow()).poll == []

    # Once Graph accepts it, it is subscribed again, no longer polled, and reconciled for the gap.
    monkeypatch.setattr(sim_subs, "create", create)
    live.clear()
    sub_id, followups = subscriptions.ensure_subscription(live.rt, room.id)
    actors.dispatch(followups)
    assert sub_id is not None
    assert not live.room(SATURNE).polling and len(live.subs(SATURNE)) == 1
    assert live.count("reconcile_room") == 1
    assert httpx.get(f"{live.base_url}/readyz").json()["polled_rooms"] == []


def test_a_replacement_that_failed_half_way_is_completed_by_the_retry(live: Live) -> None:
    """The job is retried after a failure between 'old one removed' and 'new one created' (e.g. Graph throttled)."""
    live.import_and_subscribe()
    [old] = live.subs(JUPITER)
    live.sandbox.graph.expire_subscription(old.id)
    live.update(Subscription, old.id, status="removed")  # as left by the failed first attempt
    live.clear()

    actors.dispatch(subscriptions.renew(live.rt, old.id))  # the retry

    [new] = live.subs(JUPITER)
    assert new.id in live.sandbox.graph.subscriptions and live.count("reconcile_room") == 1
    actors.dispatch(subscriptions.renew(live.rt, old.id))  # once more: nothing new
    assert [s.id for s in live.subs(JUPITER)] == [new.id] and live.count("reconcile_room") == 1
