"""Helpers for tests that run against the simulator: a seeded tenant, an authenticated client, a webhook receiver."""

from __future__ import annotations

import functools
import ssl
import threading
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from simulators.graph.simulator import GraphSimulator
from simulators.server import ServerThread, TestCA

TENANT_ID = "9b2c6f1e-4b1a-4c55-9e54-2f1d3a7c8e01"
CLIENT_ID = "3f5e2a10-7c1d-4e8b-a6f2-0d9c8b7a6e51"
CLIENT_SECRET = "s3cr3t~value"
ROOMS = {"room-a@contoso.com": "Room A", "room-b@contoso.com": "Room B", "room-c@contoso.com": "Room C"}


@functools.cache
def shared_ca() -> TestCA:
    """One test CA per process: aiohttp (the transport of azure.identity.aio) builds its default SSL context once per
    process from SSL_CERT_FILE as it is then, so every server a process trusts must share that CA."""
    return TestCA.create()


def seeded_simulator() -> GraphSimulator:
    """Contoso: one registered app, three rooms (HQ), two users. Not started."""
    sim = GraphSimulator(tenant_id=TENANT_ID, domain="contoso.com")
    sim.register_app(CLIENT_ID, CLIENT_SECRET)
    for floor, (email, name) in enumerate(ROOMS.items(), start=1):
        sim.add_room(
            email,
            name,
            capacity=4 * floor,
            building="HQ",
            floor_number=floor,
            tags=["hq"],
            time_zone="Romance Standard Time",
        )
    sim.add_user("alice@contoso.com", "Alice Martin", time_zone="Romance Standard Time")
    sim.add_user("bob@contoso.com", "Bob Durand")
    return sim


def trust(ca: TestCA) -> ssl.SSLContext:
    """What a client needs to trust the simulator's certificate."""
    return ssl.create_default_context(cafile=str(ca.ca_file))


def fetch_token(sim: GraphSimulator, ca: TestCA, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    response = httpx.post(
        f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default",
        },
        verify=trust(ca),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def graph_client(sim: GraphSimulator, ca: TestCA) -> httpx.Client:
    """httpx over TLS to `/v1.0`, with a bearer token of the seeded app."""
    return httpx.Client(
        base_url=sim.graph_base_url,
        verify=trust(ca),
        headers={"Authorization": f"Bearer {fetch_token(sim, ca)}"},
        timeout=15,
    )


class WebhookReceiver:
    """A notification endpoint: answers the validation handshake (with `echo`) and records what Graph POSTs."""

    def __init__(self, ca: TestCA | None = None) -> None:
        self.echo: Callable[[str], str] = lambda token: token
        self.fail_next = 0  # answer 500 to the next N notification POSTs
        self.validations: list[str] = []
        self.notifications: list[dict[str, Any]] = []  # the items of `value`, in arrival order
        self.lifecycle: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        app = Starlette(
            routes=[
                Route("/notifications", self._receive, methods=["POST"]),
                Route("/lifecycle", self._receive, methods=["POST"]),
            ]
        )
        self._server = ServerThread(app, tls=ca)

    def start(self) -> WebhookReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def notification_url(self) -> str:
        return f"{self._server.base_url}/notifications"

    @property
    def lifecycle_url(self) -> str:
        return f"{self._server.base_url}/lifecycle"

    def wait_for(self, count: int, timeout: float = 60.0, lifecycle: bool = False) -> list[dict[str, Any]]:
        with self._cond:
            items = self.lifecycle if lifecycle else self.notifications
            self._cond.wait_for(lambda: len(items) >= count, timeout)
            return list(items)

    async def _receive(self, request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            with self._cond:
                self.validations.append(token)
            return PlainTextResponse(self.echo(token))
        items = (await request.json())["value"]
        with self._cond:
            if self.fail_next > 0 and request.url.path == "/notifications":
                self.fail_next -= 1
                return Response(status_code=500)
            (self.lifecycle if request.url.path == "/lifecycle" else self.notifications).extend(items)
            self._cond.notify_all()
        return Response(status_code=202)
