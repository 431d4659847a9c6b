"""A simulated Microsoft tenant and booking system, wired together: what the demo and the end-to-end tests run.

The bridge reaches them exactly as it reaches the real services: Graph and the token endpoint over TLS (trusting the
sandbox's test CA through SSL_CERT_FILE / REQUESTS_CA_BUNDLE), the booking API over loopback HTTP.

A `GraphHost` serves several sandboxes' tenants on one Graph port: one bridge process (whose Graph address and CA
are process settings) then reaches a fresh tenant and a fresh booking system per test (the end-to-end tests).
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from simulators.booking import BookingSimulator
from simulators.graph import GraphSimulator
from simulators.graph.auth import auth_routes
from simulators.graph.backend import GraphBackend
from simulators.graph.errors import GraphError
from simulators.graph.routes import graph_routes
from simulators.server import ServerThread, TestCA

DOMAIN = "contoso.com"
ROOMS = [
    dict(email="salle-jupiter@contoso.com", display_name="Salle Jupiter", capacity=12, building="Siège",
         floor_number=2, tags=["visio"], address={"street": "1 rue de la Paix", "city": "Paris",
                                                  "postalCode": "75002", "countryOrRegion": "FR"},
         time_zone="Romance Standard Time"),
    dict(email="salle-saturne@contoso.com", display_name="Salle Saturne", capacity=6, building="Siège",
         floor_number=3, tags=[], time_zone="Romance Standard Time"),
    dict(email="atelier@contoso.com", display_name="Atelier (travaux)", capacity=20, building="Annexe",
         floor_number=0, tags=["Maintenance"], time_zone="Romance Standard Time"),
]
USERS = [
    ("alice@contoso.com", "Alice Martin"),
    ("bob@contoso.com", "Bob Durand"),
    ("accueil@contoso.com", "Accueil Contoso"),
]


def _graph_app(backend: GraphBackend) -> Starlette:
    return Starlette(routes=[*auth_routes(backend.issuer), *graph_routes(backend)])


class GraphHost:
    """One simulated Graph server (one TLS port, one test CA) for several tenants, each a `GraphSimulator` of its own
    (directory, calendars, subscriptions, notification faults, throttling, stats). Entra's endpoints are routed by
    the tenant named in their path, `/v1.0` by the tenant that issued the bearer token; what matches no tenant gets
    the answer Graph gives an unknown tenant or token."""

    def __init__(self, ca: TestCA | None = None) -> None:
        self.ca = ca or TestCA.create()
        self._lock = threading.Lock()
        self._tenants: dict[str, tuple[GraphSimulator, ASGIApp]] = {}  # by tenant id, oldest first
        self._nobody = _graph_app(GraphBackend.create(str(uuid.uuid4()), "nobody.invalid"))
        self._server: ServerThread | None = None

    def start(self) -> "GraphHost":
        async def app(scope: Scope, receive: Receive, send: Send) -> None:  # a function: uvicorn then sees ASGI 3
            await self._dispatch(scope, receive, send)

        self._server = ServerThread(app, tls=self.ca).start()
        return self

    def stop(self) -> None:
        with self._lock:
            tenants = [graph for graph, _ in self._tenants.values()]
        for graph in tenants:
            graph.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "GraphHost":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Graph host is not started")
        return self._server.base_url

    def bridge_env(self) -> dict[str, str]:
        """What a bridge needs to reach every tenant of this host (the same for all of them)."""
        return {
            "GRAPH_BASE_URL": f"{self.base_url}/v1.0",
            "GRAPH_AUTHORITY_HOST": self.base_url.removeprefix("https://"),
            "SSL_CERT_FILE": str(self.ca.ca_file),
            "REQUESTS_CA_BUNDLE": str(self.ca.ca_file),
        }

    def attach(self, graph: GraphSimulator) -> None:
        with self._lock:
            self._tenants[graph.tenant_id.lower()] = (graph, _graph_app(graph.backend))

    def detach(self, graph: GraphSimulator) -> None:
        with self._lock:
            self._tenants.pop(graph.tenant_id.lower(), None)

    def _route(self, scope: Scope) -> ASGIApp:
        with self._lock:
            tenants = list(self._tenants.items())
        path: str = scope.get("path", "")
        if path == "/v1.0" or path.startswith("/v1.0/"):
            headers = Headers(scope=scope)
            for _, (graph, app) in tenants:
                try:
                    graph.backend.issuer.authenticate(headers)
                except GraphError:
                    continue
                return app
            return self._nobody
        name = path.strip("/").split("/", 1)[0].lower()
        if name in dict(tenants):
            return dict(tenants)[name][1]
        for _, (graph, app) in reversed(tenants):  # a domain name: the newest tenant of that domain
            if name in graph.backend.issuer.tenant_names:
                return app
        return self._nobody

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # each tenant's delivery is started and stopped with the tenant
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self._route(scope)(scope, receive, send)


class HostedGraph(GraphSimulator):
    """A tenant served by a `GraphHost` instead of a server of its own; otherwise a `GraphSimulator`."""

    def __init__(self, host: GraphHost, tenant_id: str | None = None, domain: str = "contoso.com") -> None:
        super().__init__(tenant_id, domain)
        self.host = host
        self._attached = False

    def start(self, ca: TestCA | None = None) -> "HostedGraph":
        trust = ssl.create_default_context()
        trust.load_verify_locations(cafile=str(self.host.ca.ca_file))  # the bridge's webhooks: same test CA
        self.backend.delivery.verify = trust
        self.backend.subscriptions.verify = trust
        self.backend.delivery.start()
        self.host.attach(self)
        self._attached = True
        return self

    def stop(self) -> None:
        if self._attached:
            self._attached = False
            self.host.detach(self)
            self.backend.delivery.stop()

    @property
    def base_url(self) -> str:
        return self.host.base_url


@dataclass
class Sandbox:
    ca: TestCA
    graph: GraphSimulator
    booking: BookingSimulator
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    booking_api_key: str = field(repr=False)

    @classmethod
    def start(cls, rooms: list[dict[str, Any]] | None = None, host: GraphHost | None = None) -> "Sandbox":
        """A tenant and a booking system of their own; with `host`, the tenant is served by that shared Graph server
        (and trusted through its CA) instead of a server of its own."""
        ca = host.ca if host is not None else TestCA.create()
        tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
        client_secret, api_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        graph = HostedGraph(host, tenant_id, DOMAIN) if host is not None else GraphSimulator(tenant_id, DOMAIN)
        graph.register_app(client_id, client_secret)
        for email, name in USERS:
            graph.add_user(email, name)
        for room in rooms if rooms is not None else ROOMS:
            graph.add_room(**room)
        graph.start(ca)
        booking = BookingSimulator(api_key=api_key, store_id="magasin-salles").start()
        return cls(ca, graph, booking, tenant_id, client_id, client_secret, api_key)

    def bridge_env(self) -> dict[str, str]:
        """Environment a bridge process needs to talk to this sandbox (on top of its own settings)."""
        return {
            "GRAPH_BASE_URL": self.graph.graph_base_url,
            "GRAPH_AUTHORITY_HOST": self.graph.authority_host,
            "SSL_CERT_FILE": str(self.ca.ca_file),
            "REQUESTS_CA_BUNDLE": str(self.ca.ca_file),
        }

    def integration(self, **overrides: Any) -> dict[str, Any]:
        """The body of `POST /api/integrations` for this sandbox."""
        body: dict[str, Any] = dict(
            name="Contoso (simulated)", enabled=True, tenant_domain=DOMAIN, tenant_id=self.tenant_id,
            client_id=self.client_id, client_secret=self.client_secret, booking_base_url=self.booking.base_url,
            booking_api_key=self.booking_api_key, default_store_id=self.booking.store_id,
            default_user_email="accueil@contoso.com", ignore_tags="maintenance",
        )
        body.update(overrides)
        return body

    def settle(self, quiet_s: float = 1.5, timeout: float = 120.0,
               also: Callable[[], object] | None = None) -> None:
        """Wait until nothing moves: notifications and hooks delivered, and neither simulator has seen a request for
        `quiet_s` (longer than the bridge's coalescing window, so its delayed jobs have run). `also` adds state of
        the caller's to watch (e.g. the bridge's journal)."""
        deadline = time.monotonic() + timeout
        last: object = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            self.graph.wait_idle(5)
            self.booking.wait_idle(5)
            now = (sum(self.graph.stats.requests.values()), self.booking.stats.requests,
                   self.graph.stats.notifications_delivered, self.booking.stats.hooks_sent,
                   also() if also else None)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)
        raise AssertionError(f"the bridge and the simulators did not go quiet within {timeout:.0f}s")

    def stop(self) -> None:
        self.graph.stop()
        self.booking.stop()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
