"""Constants and helpers shared by the Graph simulator tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
from azure.identity.aio import ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from simulators.graph import GraphSimulator
from tests.simulators.graph_helpers import CLIENT_ID, CLIENT_SECRET

T = TypeVar("T")
C = TypeVar("C")

ALICE, BOB = "alice@contoso.com", "bob@contoso.com"
ROOM_A, ROOM_B, ROOM_C = "room-a@contoso.com", "room-b@contoso.com", "room-c@contoso.com"
NINE = datetime(2031, 3, 10, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def credential(kind: Callable[..., C], sim: GraphSimulator, secret: str = CLIENT_SECRET) -> C:
    """An azure-identity ClientSecretCredential (`kind`: the sync or the aio class) pointed at the simulator."""
    return kind(
        sim.tenant_id, CLIENT_ID, secret, authority=sim.authority_host, disable_instance_discovery=True
    )


def with_client(sim: GraphSimulator, use: Callable[[GraphServiceClient], Awaitable[T]]) -> T:
    """Run `use` with a real msgraph-sdk client on the simulator, built the way the product should build it."""

    async def run() -> T:
        async with credential(ClientSecretCredential, sim) as token_credential:
            auth = AzureIdentityAuthenticationProvider(
                token_credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"]
            )
            # Our own transport, because closing the SDK's client doesn't close its connection pool (msgraph-core's
            # AsyncGraphTransport has no aclose), and idle TLS connections hold up the server's shutdown.
            transport = httpx.AsyncHTTPTransport()
            http_client = GraphClientFactory.create_with_default_middleware(
                client=httpx.AsyncClient(transport=transport)
            )
            adapter = GraphRequestAdapter(auth, client=http_client)
            adapter.base_url = sim.graph_base_url
            try:
                return await use(GraphServiceClient(request_adapter=adapter))
            finally:
                await transport.aclose()

    return asyncio.run(run())
