"""A simulated Microsoft tenant and booking system, wired together: what the demo and the end-to-end tests run.

The bridge reaches them exactly as it reaches the real services: Graph and the token endpoint over TLS (trusting the
sandbox's test CA through SSL_CERT_FILE / REQUESTS_CA_BUNDLE), the booking API over loopback HTTP.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulators.booking import BookingSimulator
from simulators.graph import GraphSimulator
from simulators.server import TestCA

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
    def start(cls, rooms: list[dict[str, Any]] | None = None) -> "Sandbox":
        ca = TestCA.create()
        tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
        client_secret, api_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        graph = GraphSimulator(tenant_id=tenant_id, domain=DOMAIN)
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
