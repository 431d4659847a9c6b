"""Issue 8.8 / Deliver 5: failed admin authentications are logged (rate-limited, never the token) and answered more
slowly after repeated failures from one client.

The delay is observed through the counter's injected clock and sleep (the real handler awaits it before its 401),
never by timing requests."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from app.platform.migrate import upgrade
from app.web import authn
from app.web.app import create_app
from app.web.authn import FailedAuthentications
from tests.conftest import ADMIN_TOKEN, make_settings

GOOD = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRONG_TOKEN = "wrong-token-that-must-never-be-logged"
WRONG = {"Authorization": f"Bearer {WRONG_TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Records the delays the handler awaited (and returns at once)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def bridge(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 'rb.db'}")
    upgrade(settings.database_url)
    app = create_app(settings, run_worker=False)
    clock, sleeps = Clock(), Sleeps()
    app.state.failed_authentications = FailedAuthentications(clock=clock, sleep=sleeps)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, clock, sleeps


def _log_lines(capfd) -> list[str]:
    captured = capfd.readouterr()
    return [line for line in (captured.out + captured.err).splitlines() if "admin authentication failed" in line]


def test_repeated_failures_from_one_client_are_answered_more_slowly_up_to_a_cap(bridge) -> None:
    client, clock, sleeps = bridge
    for _ in range(12):
        assert client.get("/api/integrations", headers=WRONG).status_code == 401
    free = authn.FREE_FAILURES
    expected = [min(authn.BASE_DELAY_S * 2 ** i, authn.MAX_DELAY_S) for i in range(12 - free)]
    assert sleeps.delays == expected
    assert sleeps.delays[-1] == authn.MAX_DELAY_S  # capped
    # Another client is not slowed down by this one.
    other = TestClient(client.app, raise_server_exceptions=False, client=("192.0.2.7", 4242))
    assert other.get("/api/integrations", headers=WRONG).status_code == 401
    assert len(sleeps.delays) == 12 - free
    # The right token answers at once and forgets the failures.
    assert client.get("/api/integrations", headers=GOOD).status_code == 200
    assert client.app.state.failed_authentications.failures_of("testclient") == 0
    assert client.get("/api/integrations", headers=WRONG).status_code == 401
    assert len(sleeps.delays) == 12 - free  # the first failure again: no delay
    # A quiet window forgets them too: this is the (free + 1)-th failure in a row, but after the window.
    for _ in range(free - 1):
        client.get("/api/integrations", headers=WRONG)
    assert client.app.state.failed_authentications.failures_of("testclient") == free
    clock.now += authn.WINDOW_S + 1
    client.get("/api/integrations", headers=WRONG)
    assert len(sleeps.delays) == 12 - free
    assert client.app.state.failed_authentications.failures_of("testclient") == 1


def test_failures_are_logged_rate_limited_and_without_the_token(bridge, capfd) -> None:
    client, clock, _ = bridge
    capfd.readouterr()
    for _ in range(300):  # "300 wrong tokens a second, all 401, nothing logged"
        assert client.get("/api/integrations", headers=WRONG).status_code == 401
    assert client.get("/api/integrations", headers={"Authorization": "Basic " + WRONG_TOKEN}).status_code == 401
    lines = _log_lines(capfd)
    assert len(lines) == 1, lines
    assert "testclient" in lines[0] and "failures=1" in lines[0]
    clock.now += authn.LOG_EVERY_S
    client.get("/api/integrations", headers=WRONG)
    [line] = _log_lines(capfd)
    assert "failures=302" in line and "not_logged_since_last=300" in line
    captured = capfd.readouterr()
    assert WRONG_TOKEN not in captured.out + captured.err


def test_the_client_table_is_bounded() -> None:
    import asyncio

    sleeps = Sleeps()
    counter = FailedAuthentications(sleep=sleeps, max_clients=10)
    for i in range(50):
        asyncio.run(counter.failed(f"10.0.0.{i}", "wrong token"))
    assert sum(counter.failures_of(f"10.0.0.{i}") for i in range(50)) == 10
    assert counter.failures_of("10.0.0.49") == 1 and counter.failures_of("10.0.0.0") == 0
