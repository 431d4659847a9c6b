"""`GraphHost`: one Graph port for several sandboxes' tenants (what lets the end-to-end tests share a bridge). Each
tenant sees only its own requests: tokens, directory, calendars and counters stay apart."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from simulators.sandbox import GraphHost, Sandbox


@pytest.fixture
def host():
    with GraphHost() as h:
        yield h


def token(sandbox: Sandbox, client: httpx.Client, tenant: str | None = None) -> httpx.Response:
    return client.post(f"/{tenant or sandbox.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret, "scope": "https://graph.microsoft.com/.default"})


def test_tenants_on_one_host_are_apart(host: GraphHost) -> None:
    trust = ssl.create_default_context(cafile=str(host.ca.ca_file))
    with Sandbox.start(host=host) as a, Sandbox.start(host=host) as b, \
            httpx.Client(base_url=host.base_url, verify=trust) as client:
        assert a.bridge_env() == b.bridge_env() == host.bridge_env()
        start = datetime.now(UTC) + timedelta(days=1)
        a.graph.create_meeting("alice@contoso.com", "A only", start, start + timedelta(hours=1),
                               rooms=["salle-jupiter@contoso.com"])

        token_a, token_b = (token(s, client).json()["access_token"] for s in (a, b))
        events = {name: client.get("/v1.0/users/salle-jupiter@contoso.com/events",
                                   headers={"Authorization": f"Bearer {t}"})
                  for name, t in (("a", token_a), ("b", token_b))}
        assert [e["subject"] for e in events["a"].json()["value"]] == ["Alice Martin"]  # a room copy's subject
        assert events["b"].json()["value"] == []
        assert a.graph.stats.tokens_issued == 1 and b.graph.stats.tokens_issued == 1
        assert sum(a.graph.stats.requests.values()) == 1 and sum(b.graph.stats.requests.values()) == 1

        # One tenant's secret is no good for another; unknown tenants and tokens get Entra's and Graph's answers.
        assert token(a, client, tenant=b.tenant_id).json()["error"] == "unauthorized_client"
        assert token(a, client, tenant="00000000-0000-0000-0000-000000000000").json()["error"] == "invalid_tenant"
        unknown = client.get("/v1.0/users/alice@contoso.com", headers={"Authorization": "Bearer nope"})
        assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "InvalidAuthenticationToken"

        # A stopped sandbox's tenant is gone from the host: its tokens no longer work, the other's still do.
        a.stop()
        gone = client.get("/v1.0/users/alice@contoso.com", headers={"Authorization": f"Bearer {token_a}"})
        assert gone.status_code == 401
        assert client.get("/v1.0/users/alice@contoso.com",
                          headers={"Authorization": f"Bearer {token_b}"}).status_code == 200
