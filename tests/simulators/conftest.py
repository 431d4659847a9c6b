"""Fixtures: a freshly seeded Graph simulator per test over TLS, a client on it, a webhook receiver.

Modules that need the simulator started differently override `sim` locally, building on the one here.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulators.graph import GraphSimulator
from simulators.server import TestCA as CertificateAuthority  # aliased: pytest would collect Test*
from tests.simulators.graph_helpers import WebhookReceiver, graph_client, seeded_simulator, shared_ca


@pytest.fixture
def ca() -> CertificateAuthority:
    return shared_ca()


@pytest.fixture
def trust_ca_env(ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point SSL_CERT_FILE and REQUESTS_CA_BUNDLE at the test CA: read by httpx (the SDK's client) when it is
    created, and by azure-identity's transport."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))


@pytest.fixture
def sim(ca: CertificateAuthority) -> Iterator[GraphSimulator]:
    sim = seeded_simulator().start(ca)
    yield sim
    sim.stop()


@pytest.fixture
def graph(sim: GraphSimulator, ca: CertificateAuthority) -> Iterator[httpx.Client]:
    with graph_client(sim, ca) as client:
        yield client


@pytest.fixture
def receiver(ca: CertificateAuthority) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(ca).start()
    yield receiver
    receiver.stop()
