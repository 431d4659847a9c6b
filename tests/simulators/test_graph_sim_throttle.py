"""Outlook's per-mailbox concurrency limit and injected faults."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from simulators.graph import GraphSimulator
from simulators.server import TestCA as CertificateAuthority  # aliased: pytest would collect Test*
from tests.simulators.common import ROOM_A, ROOM_B
from tests.simulators.graph_helpers import fetch_token, trust


def fire(sim: GraphSimulator, ca: CertificateAuthority, paths: list[str]) -> list[httpx.Response]:
    """All requests at once, each on its own connection."""
    token = fetch_token(sim, ca)

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(paths))
        async with httpx.AsyncClient(
            base_url=sim.graph_base_url,
            verify=trust(ca),
            limits=limits,
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        ) as client:
            return list(await asyncio.gather(*(client.get(path) for path in paths)))

    return asyncio.run(run())


def test_more_than_four_concurrent_requests_on_a_mailbox_get_429(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    sim.latency = 0.5

    responses = fire(sim, ca, [f"/users/{ROOM_A}/events"] * 8)

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 4 + [429] * 4
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "2"
    error = refused.json()["error"]
    assert (error["code"], error["message"]) == ("TooManyRequests", "Application is over its MailboxConcurrency limit.")
    assert error["innerError"]["status"] == "429"
    room_id = sim.user_id(ROOM_A)
    assert sim.stats.max_in_flight[room_id] == 4 and sim.stats.throttled == 4


def test_the_limit_is_per_mailbox(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    sim.latency = 0.3

    responses = fire(sim, ca, [f"/users/{ROOM_A}/events"] * 4 + [f"/users/{ROOM_B}/events"] * 4)

    assert {r.status_code for r in responses} == {200}


def test_slots_are_released_when_handlers_fail(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    sim.latency = 0.05
    fire(sim, ca, [f"/users/{ROOM_A}/events/AAMkADmissing="] * 4)  # 404s

    responses = fire(sim, ca, [f"/users/{ROOM_A}/events"] * 4)

    assert {r.status_code for r in responses} == {200}


def test_retry_after_and_the_limit_are_settable(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    sim.latency, sim.retry_after, sim.mailbox_concurrency = 0.3, 7, 1

    responses = fire(sim, ca, [f"/users/{ROOM_A}/mailboxSettings"] * 2)

    assert sorted(r.status_code for r in responses) == [200, 429]
    assert {r.headers.get("Retry-After") for r in responses} == {None, "7"}


@pytest.mark.parametrize("status", [429, 503])
def test_injected_faults_hit_the_next_requests(sim: GraphSimulator, ca: CertificateAuthority, status: int) -> None:
    sim.inject(status=status, count=2, retry_after=3)

    responses = [r.status_code for r in fire(sim, ca, ["/places/microsoft.graph.room"])]
    responses += [r.status_code for r in fire(sim, ca, ["/places/microsoft.graph.room"] * 2)]

    assert responses.count(status) == 2 and responses.count(200) == 1
    assert sim.stats.faults_injected == 2


def test_injection_can_target_one_mailbox(sim: GraphSimulator, ca: CertificateAuthority) -> None:
    sim.inject(status=503, count=1, mailbox=ROOM_B)

    other = fire(sim, ca, [f"/users/{ROOM_A}/events"])[0]
    target = fire(sim, ca, [f"/users/{ROOM_B}/events"])[0]

    assert (other.status_code, target.status_code) == (200, 503)
    assert target.headers["Retry-After"] == "2" and target.json()["error"]["code"] == "ServiceUnavailable"
