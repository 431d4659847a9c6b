"""The real msgraph-sdk (kiota, httpx) and azure-identity against the simulator over TLS.

The construction in `common.with_client` is the one the product should use: a ClientSecretCredential pointed at the
simulator's authority, an AzureIdentityAuthenticationProvider that allows 127.0.0.1 (kiota attaches tokens only for
allowed hosts), and a GraphRequestAdapter whose base_url is the simulator's /v1.0, over an httpx transport we own so
that it can be closed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.response_type import ResponseType
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.graph_service_client import GraphServiceClient

from simulators.graph import GraphSimulator
from tests.simulators.common import ALICE, NINE, ROOM_A, with_client


@pytest.fixture
def sim(trust_ca_env: None, sim: GraphSimulator) -> GraphSimulator:
    # The CA in the environment: read by httpx (the SDK's client) when it is created, and by azure-identity.
    return sim


def test_the_sdk_lists_rooms_and_reads_a_room_copy(sim: GraphSimulator) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + timedelta(hours=1), rooms=[ROOM_A])
    room_id = sim.user_id(ROOM_A)
    [room_copy] = sim.events(ROOM_A)

    async def use(client: GraphServiceClient) -> None:
        rooms = await client.places.graph_room.get()
        assert rooms is not None and rooms.value is not None
        assert [r.email_address for r in rooms.value] == [
            "room-a@contoso.com",
            "room-b@contoso.com",
            "room-c@contoso.com",
        ]
        assert rooms.value[0].id == sim.place_id(ROOM_A)

        event = await client.users.by_user_id(room_id).events.by_event_id(room_copy["id"]).get()
        assert event is not None and event.i_cal_u_id == meeting["iCalUId"]
        assert event.start is not None and event.start.date_time == "2031-03-10T09:00:00.0000000"
        assert event.organizer and event.organizer.email_address
        assert event.organizer.email_address.address == ALICE
        assert event.response_status and event.response_status.response == ResponseType.Accepted

    with_client(sim, use)
    assert sim.stats.requests[("GET", "places")] == 1 and sim.stats.requests[("GET", "event")] == 1


def test_the_sdk_follows_delta_and_reads_errors(sim: GraphSimulator) -> None:
    sim.create_meeting(ALICE, "Weekly", NINE, NINE + timedelta(hours=1), rooms=[ROOM_A])

    async def use(client: GraphServiceClient) -> None:
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            start_date_time="2031-03-01T00:00:00Z", end_date_time="2031-04-01T00:00:00Z"
        )
        delta = client.users.by_user_id(ROOM_A).calendar_view.delta
        first = await delta.get(RequestConfiguration(query_parameters=query))
        assert first is not None and first.value is not None and first.odata_delta_link
        assert len(first.value) == 1

        sim.expire_delta_tokens()
        with pytest.raises(ODataError) as raised:
            await delta.with_url(first.odata_delta_link).get()
        assert raised.value.response_status_code == 410
        assert raised.value.error is not None and raised.value.error.code == "syncStateNotFound"

    with_client(sim, use)


def test_the_sdk_retries_a_429_after_retry_after(sim: GraphSimulator) -> None:
    sim.inject(status=429, count=1, retry_after=1)

    async def use(client: GraphServiceClient) -> str | None:
        user = await client.users.by_user_id(ALICE).get()
        return user.display_name if user else None

    assert with_client(sim, use) == "Alice Martin"
    assert sim.stats.throttled == 1 and sim.stats.requests[("GET", "user")] == 2
