"""The simulator's parts wired together, shared by the HTTP routes and the Python control API."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.graph.auth import TokenIssuer
from simulators.graph.delivery import Delivery
from simulators.graph.delta import DEFAULT_DELTA_PAGE_SIZE, DeltaTokens
from simulators.graph.exchange import Exchange
from simulators.graph.state import Tenant
from simulators.graph.stats import GraphStats
from simulators.graph.subscriptions import Subscriptions
from simulators.graph.throttle import Throttle

DEFAULT_PLACES_PAGE_SIZE = 100  # Graph's default for /places
DEFAULT_EVENTS_PAGE_SIZE = 10  # Graph's default for event collections


@dataclass
class Tunables:
    """Knobs tests turn at run time."""

    latency: float = 0.0  # seconds every /v1.0 handler sleeps while holding its mailbox slot
    places_page_size: int = DEFAULT_PLACES_PAGE_SIZE
    events_page_size: int = DEFAULT_EVENTS_PAGE_SIZE
    delta_page_size: int = DEFAULT_DELTA_PAGE_SIZE


@dataclass
class GraphBackend:
    tenant: Tenant
    issuer: TokenIssuer
    stats: GraphStats
    throttle: Throttle
    exchange: Exchange
    deltas: DeltaTokens
    delivery: Delivery
    subscriptions: Subscriptions
    tunables: Tunables = field(default_factory=Tunables)

    @classmethod
    def create(cls, tenant_id: str, domain: str) -> GraphBackend:
        tenant = Tenant(tenant_id, domain)
        stats = GraphStats()
        delivery = Delivery(stats)
        return cls(
            tenant=tenant,
            issuer=TokenIssuer(tenant_id, domain, stats),
            stats=stats,
            throttle=Throttle(stats),
            exchange=Exchange(tenant),
            deltas=DeltaTokens(tenant),
            delivery=delivery,
            subscriptions=Subscriptions(tenant, delivery),
        )
