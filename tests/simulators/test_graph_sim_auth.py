"""Entra client credentials and the bearer check, with azure-identity's real ClientSecretCredential (MSAL)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError

from simulators.graph import GraphSimulator
from simulators.server import TestCA as CertificateAuthority  # aliased: pytest would collect Test*
from tests.simulators.common import ALICE, GRAPH_SCOPE, credential
from tests.simulators.graph_helpers import CLIENT_SECRET, fetch_token, trust


@pytest.fixture
def sim(trust_ca_env: None, sim: GraphSimulator) -> GraphSimulator:
    return sim


def get_me(sim: GraphSimulator, ca: CertificateAuthority, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return httpx.get(f"{sim.graph_base_url}/users/{ALICE}", headers=headers, verify=trust(ca))


def test_the_sync_credential_gets_a_token_that_graph_accepts(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    from azure.identity import ClientSecretCredential

    # Closed so that no idle TLS connection delays the server's shutdown.
    with credential(ClientSecretCredential, sim) as secret_credential:
        token = secret_credential.get_token(GRAPH_SCOPE)

    assert token.expires_on > 0
    assert get_me(sim, ca, f"Bearer {token.token}").status_code == 200


def test_the_async_credential_gets_a_token_that_graph_accepts(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    from azure.identity.aio import ClientSecretCredential

    async def fetch() -> str:
        async with credential(ClientSecretCredential, sim) as secret_credential:
            return (await secret_credential.get_token(GRAPH_SCOPE)).token

    assert get_me(sim, ca, f"Bearer {asyncio.run(fetch())}").status_code == 200


def test_a_wrong_secret_is_refused_like_entra(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    # The async credential: on this error path the sync one leaves a TLS connection open, which holds up the
    # server's shutdown for ServerThread's 10 s join.
    from azure.identity.aio import ClientSecretCredential

    async def fetch() -> None:
        async with credential(ClientSecretCredential, sim, secret="wrong") as secret_credential:
            await secret_credential.get_token(GRAPH_SCOPE)

    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        asyncio.run(fetch())

    with pytest.raises(httpx.HTTPStatusError) as raised:
        fetch_token(sim, ca, secret="wrong")
    assert raised.value.response.status_code == 401
    body = raised.value.response.json()
    assert body["error"] == "invalid_client" and body["error_codes"] == [7000215]


def test_an_unknown_client_or_tenant_is_refused(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    with pytest.raises(httpx.HTTPStatusError) as raised:
        fetch_token(sim, ca, client_id="nobody")
    assert raised.value.response.json()["error"] == "unauthorized_client"

    discovery = httpx.get(f"{sim.base_url}/other-tenant/v2.0/.well-known/openid-configuration", verify=trust(ca))
    assert discovery.status_code == 400 and discovery.json()["error"] == "invalid_tenant"


def test_the_openid_configuration_points_at_the_simulator(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    config = httpx.get(f"{sim.base_url}/{sim.tenant_id}/v2.0/.well-known/openid-configuration", verify=trust(ca)).json()

    assert config["token_endpoint"] == f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token"
    assert config["issuer"].startswith(sim.base_url)


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", f"Basic {CLIENT_SECRET}"])
def test_graph_requires_a_known_bearer_token(
    sim: GraphSimulator, ca: CertificateAuthority, authorization: str | None
) -> None:
    response = get_me(sim, ca, authorization)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_revoked_tokens_are_refused(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    token = fetch_token(sim, ca)
    sim.revoke_tokens()

    assert get_me(sim, ca, f"Bearer {token}").status_code == 401
