"""Subscriptions (handshake, limits, renew, delete, expiry) and the notifications they receive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from simulators.graph import GraphSimulator
from tests.simulators.common import ALICE, HOUR, NINE, ROOM_A, ROOM_B
from tests.simulators.graph_helpers import CLIENT_ID, TENANT_ID, WebhookReceiver

CLIENT_STATE = "k" * 128


@pytest.fixture
def sim(receiver: WebhookReceiver, sim: GraphSimulator) -> GraphSimulator:
    return sim  # started after the receiver, stopped before it


def in_minutes(sim: GraphSimulator, minutes: float) -> str:
    return (sim.now() + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def subscription_request(
    sim: GraphSimulator, receiver: WebhookReceiver, room: str = ROOM_A, **extra: Any
) -> dict[str, Any]:
    return {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.notification_url,
        "lifecycleNotificationUrl": receiver.lifecycle_url,
        "resource": f"/users/{sim.user_id(room)}/events",
        "expirationDateTime": in_minutes(sim, 10_000),
        "clientState": CLIENT_STATE,
        **extra,
    }


@pytest.fixture
def subscription(sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client) -> dict[str, Any]:
    response = graph.post(
        "/subscriptions", json=subscription_request(sim, receiver), headers={"Prefer": 'IdType="ImmutableId"'}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# -- create ------------------------------------------------------------------------------------------------------


def test_create_validates_both_urls_then_returns_the_subscription(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    assert len(receiver.validations) == 2
    assert all(token.startswith("Validation: ") and " " in token for token in receiver.validations)  # decoded
    assert subscription["resource"] == f"/users/{sim.user_id(ROOM_A)}/events"
    assert subscription["changeType"] == "created,updated,deleted"
    assert subscription["clientState"] == CLIENT_STATE
    assert subscription["applicationId"] == CLIENT_ID and subscription["creatorId"]
    assert subscription["lifecycleNotificationUrl"] == receiver.lifecycle_url
    assert subscription["expirationDateTime"].endswith("Z")
    assert set(sim.subscriptions) == {subscription["id"]}


def test_a_wrong_validation_echo_refuses_the_create(
    sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client
) -> None:
    receiver.echo = lambda token: token.upper()

    response = graph.post("/subscriptions", json=subscription_request(sim, receiver))

    assert response.status_code == 400 and response.json()["error"]["code"] == "ValidationError"
    assert sim.subscriptions == {}


def test_an_unreachable_endpoint_refuses_the_create(
    sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client
) -> None:
    request = subscription_request(sim, receiver, notificationUrl="https://127.0.0.1:9/notifications")

    assert graph.post("/subscriptions", json=request).status_code == 400


@pytest.mark.parametrize(
    "change",
    [
        {"expirationDateTime": "2000-01-01T00:00:00Z"},
        {"clientState": "x" * 129},
        {"changeType": "created,moved"},
        {"resource": "/users/x/messages"},
        {"notificationUrl": "http://example.com/hook"},
    ],
)
def test_invalid_requests_are_refused(
    sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client, change: dict[str, str]
) -> None:
    response = graph.post("/subscriptions", json=subscription_request(sim, receiver, **change))

    assert response.status_code == 400, response.text
    assert receiver.validations == []


def test_expiration_is_bounded(sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client) -> None:
    too_long = graph.post(
        "/subscriptions", json=subscription_request(sim, receiver, expirationDateTime=in_minutes(sim, 10_081))
    )
    short = graph.post(
        "/subscriptions", json=subscription_request(sim, receiver, expirationDateTime=in_minutes(sim, 5))
    ).json()

    assert too_long.status_code == 400
    expiration = datetime.fromisoformat(short["expirationDateTime"].replace("0Z", "+00:00"))
    assert expiration - sim.now() > timedelta(minutes=44)


def test_the_same_resource_and_change_type_twice_is_a_conflict(
    sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client, subscription: dict[str, Any]
) -> None:
    same_room_other_spelling = subscription_request(
        sim, receiver, resource=f"users/{ROOM_A}/events", changeType="deleted,updated,created"
    )

    response = graph.post("/subscriptions", json=same_room_other_spelling)

    assert response.status_code == 409
    other_room = graph.post("/subscriptions", json=subscription_request(sim, receiver, room=ROOM_B))
    assert other_room.status_code == 201


# -- read, renew, delete, expiry ---------------------------------------------------------------------------------


def test_get_patch_delete(sim: GraphSimulator, graph: httpx.Client, subscription: dict[str, Any]) -> None:
    url = f"/subscriptions/{subscription['id']}"
    assert graph.get(url).json()["id"] == subscription["id"]
    assert [s["id"] for s in graph.get("/subscriptions").json()["value"]] == [subscription["id"]]

    renewed = graph.patch(url, json={"expirationDateTime": in_minutes(sim, 10_080)})

    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > subscription["expirationDateTime"]
    assert graph.delete(url).status_code == 204
    assert graph.get(url).status_code == 404
    assert graph.patch(url, json={"expirationDateTime": in_minutes(sim, 100)}).status_code == 404
    assert graph.delete(url).status_code == 404


def test_an_expired_subscription_is_gone_and_gets_nothing(
    sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client, subscription: dict[str, Any]
) -> None:
    sim.advance(timedelta(minutes=10_001))

    assert graph.get(f"/subscriptions/{subscription['id']}").status_code == 404
    sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    assert sim.wait_idle(60) and receiver.notifications == []


def test_expire_subscription_ends_it_without_moving_the_clock(
    sim: GraphSimulator, graph: httpx.Client, subscription: dict[str, Any]
) -> None:
    sim.expire_subscription(subscription["id"])

    response = graph.patch(f"/subscriptions/{subscription['id']}", json={"expirationDateTime": in_minutes(sim, 100)})
    assert response.status_code == 404


# -- notifications -----------------------------------------------------------------------------------------------


def test_changes_are_notified_with_the_basic_shape(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    room_id = sim.user_id(ROOM_A)
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    [room_copy] = sim.events(ROOM_A)
    sim.update_event(ALICE, meeting["id"], start=NINE + HOUR, end=NINE + 2 * HOUR)
    sim.delete_event(ROOM_A, room_copy["id"])

    items = receiver.wait_for(3)

    assert [item["changeType"] for item in items] == ["created", "updated", "deleted"]
    first = items[0]
    resource = f"Users/{room_id}/Events/{room_copy['id']}"
    assert first == {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "changeType": "created",
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": first["resourceData"]["@odata.etag"],
            "id": room_copy["id"],
        },
        "clientState": CLIENT_STATE,
        "tenantId": TENANT_ID,
    }
    assert first["resourceData"]["@odata.etag"].startswith('W/"')
    assert sim.wait_idle(60) and sim.stats.notifications_delivered == 3


def test_writes_over_http_are_notified_too(
    sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client, subscription: dict[str, Any]
) -> None:
    payload = {
        "subject": "Direct",
        "start": {"dateTime": "2031-03-10T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2031-03-10T10:00:00", "timeZone": "UTC"},
    }
    created = graph.post(f"/users/{ROOM_A}/events", json=payload).json()

    [item] = receiver.wait_for(1)

    assert (item["changeType"], item["resourceData"]["id"]) == ("created", created["id"])


def test_other_mailboxes_are_not_notified(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_B])

    assert sim.wait_idle(60) and receiver.notifications == []


def test_duplicates_mode_sends_each_notification_several_times(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    sim.delivery.duplicates = 3

    sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])

    items = receiver.wait_for(3)
    assert sim.wait_idle(60) and len(receiver.notifications) == 3
    assert len({item["resourceData"]["id"] for item in items}) == 1


def test_drop_mode_loses_the_next_notifications(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    sim.delivery.drop_next = 1
    sim.create_meeting(ALICE, "Lost", NINE, NINE + HOUR, rooms=[ROOM_A])
    sim.create_meeting(ALICE, "Kept", NINE + HOUR, NINE + 2 * HOUR, rooms=[ROOM_A])

    assert sim.wait_idle(60)
    assert len(receiver.notifications) == 1 and sim.stats.notifications_dropped == 1


def test_drop_probability_one_loses_everything(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    sim.delivery.drop_probability = 1.0
    sim.create_meeting(ALICE, "Lost", NINE, NINE + HOUR, rooms=[ROOM_A])

    assert sim.wait_idle(60) and receiver.notifications == []


def test_a_spurious_updated_follows_created(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    sim.delivery.spurious_updated = True

    sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])

    assert [item["changeType"] for item in receiver.wait_for(2)] == ["created", "updated"]


def test_reorder_mode_sends_a_burst_newest_first(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    sim.delivery.reorder_window = 0.5
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    sim.cancel_event(ALICE, meeting["id"])

    assert [item["changeType"] for item in receiver.wait_for(2)] == ["updated", "created"]


def test_delay_mode_holds_notifications(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    sim.delivery.delay = 0.5
    sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])

    assert receiver.wait_for(1, timeout=0.2) == []
    assert len(receiver.wait_for(1, timeout=60)) == 1


def test_failed_deliveries_are_retried(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any]
) -> None:
    receiver.fail_next = 2

    sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])

    assert len(receiver.wait_for(1)) == 1
    assert sim.wait_idle(60) and sim.stats.notifications_failed == 0


# -- lifecycle ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["missed", "reauthorizationRequired"])
def test_lifecycle_events_reach_the_lifecycle_url(
    sim: GraphSimulator, receiver: WebhookReceiver, subscription: dict[str, Any], event: str
) -> None:
    sim.send_lifecycle(subscription["id"], event)

    [item] = receiver.wait_for(1, lifecycle=True)
    assert item == {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "tenantId": TENANT_ID,
        "clientState": CLIENT_STATE,
        "lifecycleEvent": event,
    }
    assert subscription["id"] in sim.subscriptions


def test_subscription_removed_also_deletes_it(
    sim: GraphSimulator, receiver: WebhookReceiver, graph: httpx.Client, subscription: dict[str, Any]
) -> None:
    sim.send_lifecycle(subscription["id"], "subscriptionRemoved")

    [item] = receiver.wait_for(1, lifecycle=True)
    assert item["lifecycleEvent"] == "subscriptionRemoved"
    assert graph.get(f"/subscriptions/{subscription['id']}").status_code == 404
