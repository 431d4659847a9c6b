"""The Redis intake on the event loop (issue 9.1): hint claims and enqueues through `app/platform/aredis.py`'s one
pipelined connection. Redis unreachable, going away or silent answers 503 JSON (never 500), and the intake works
again once Redis is back; a claimed hint whose job was not stored does not swallow the next one; the protocol
client answers concurrent callers in order and loads scripts Redis does not know."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
import redis.exceptions
from starlette.testclient import TestClient

from app.platform import aredis
from app.platform.migrate import upgrade
from app.sync.runtime import current
from app.web.app import create_app
from app.web.async_queue import AsyncQueue
from tests.conftest import make_settings
from tests.helpers import queued, seed_subscription
from tests.test_intake import CLIENT_STATE, vector


class Proxy:
    """A TCP forwarder to Redis that can be cut (every connection dropped, new ones refused) and restored on the same
    port: Redis going away and coming back, as the bridge sees it."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._guard = threading.Lock()
        self._listener: socket.socket | None = None
        self.start()

    def url(self, db: str = "0") -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._guard:
            if self._listener is not None:
                try:
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (a close alone may not)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._guard:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def proxy(redis_url: str) -> Iterator[Proxy]:
    p = Proxy(redis_url)
    yield p
    p.stop()


@pytest.fixture
def app_through(proxy: Proxy, pg_url: str):
    """The web app on PostgreSQL + Redis, Redis reached through the proxy (broker, runtime and intake alike)."""
    settings = make_settings(pg_url, proxy.url())
    upgrade(settings.database_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        _, _, sub = seed_subscription(current().engine, CLIENT_STATE)
        yield client, sub


def _hint_jobs(client: TestClient) -> int:
    return len(queued(client.app.state.broker, "process_room_event"))  # type: ignore[attr-defined]


def _post(client: TestClient, sub, event: str = "evt-1"):
    payload = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE)
    payload["value"][0]["resourceData"]["id"] = event
    return client.post("/graph/notifications", json=payload)


def test_the_redis_intake_runs_on_the_event_loop(app_through) -> None:
    client, sub = app_through
    assert isinstance(client.app.state.async_queue, AsyncQueue)  # type: ignore[attr-defined]
    assert _post(client, sub).status_code == 202
    assert _hint_jobs(client) == 1


def test_redis_going_away_answers_503_json_then_the_intake_recovers(app_through, proxy: Proxy) -> None:
    client, sub = app_through
    assert _post(client, sub, "evt-1").status_code == 202
    assert _hint_jobs(client) == 1
    proxy.stop()  # Redis goes away: the open connection drops, new ones are refused
    for _ in range(3):
        r = _post(client, sub, "evt-2")
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert r.json()["error"]["code"] == "queue_unavailable"
    proxy.start()  # back: the next request connects again, and the hint refused meanwhile was not swallowed
    r = _post(client, sub, "evt-2")
    assert r.status_code == 202, r.text
    assert _hint_jobs(client) == 2
    assert _post(client, sub, "evt-2").status_code == 202  # a duplicate of a pending hint: coalesced as before
    assert _hint_jobs(client) == 2


def test_a_claimed_hint_whose_job_was_not_stored_does_not_swallow_the_next(app_through, monkeypatch) -> None:
    client, sub = app_through
    real_send = AsyncQueue.send

    async def refused(self, jobs):
        return [redis.exceptions.ResponseError("OOM command not allowed") for _ in jobs]

    monkeypatch.setattr(AsyncQueue, "send", refused)
    r = _post(client, sub)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "queue_unavailable"
    assert _hint_jobs(client) == 0
    monkeypatch.setattr(AsyncQueue, "send", real_send)
    assert _post(client, sub).status_code == 202  # the failed claim was forgotten: this one gets its job
    assert _hint_jobs(client) == 1


def test_redis_unreachable_from_the_start_answers_503_json(pg_url: str) -> None:
    settings = make_settings(pg_url, "redis://127.0.0.1:1/0")
    upgrade(settings.database_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        _, _, sub = seed_subscription(current().engine, CLIENT_STATE)
        r = _post(client, sub)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "queue_unavailable"


# --- the protocol client -------------------------------------------------------------------------------------------


def test_concurrent_callers_get_their_own_replies_and_unknown_scripts_are_loaded(redis_url: str) -> None:
    # A script no Redis has seen yet (a fresh comment): the first calls are refused NOSCRIPT, loaded, run again.
    script = aredis.Script.of(f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}")

    async def main() -> list[list[object]]:
        client = aredis.Client(redis_url)
        try:
            async def caller(i: int) -> list[object]:
                calls = [aredis.Call(script, [f"k{i}-{j}"], [f"v{i}-{j}"]) for j in range(i % 3 + 1)]
                return await client.run(calls)

            return list(await asyncio.gather(*(caller(i) for i in range(50))))
        finally:
            await client.aclose()

    for i, replies in enumerate(asyncio.run(main())):
        assert replies == [[f"k{i}-{j}".encode(), f"v{i}-{j}".encode()] for j in range(i % 3 + 1)]


def test_an_error_reply_is_that_call_s_result_and_the_others_are_answered(redis_url: str) -> None:
    ok = aredis.Script.of("return 7")
    bad = aredis.Script.of("return redis.error_reply('NOPE no such thing')")

    async def main() -> list[object]:
        client = aredis.Client(redis_url)
        try:
            return await client.run([aredis.Call(ok, [], []), aredis.Call(bad, [], []), aredis.Call(ok, [], [])])
        finally:
            await client.aclose()

    first, error, last = asyncio.run(main())
    assert first == 7 and last == 7
    assert isinstance(error, redis.exceptions.ResponseError)


def test_a_silent_redis_is_a_timeout_not_a_hang(monkeypatch) -> None:
    monkeypatch.setattr(aredis, "SOCKET_TIMEOUT_S", 0.3)
    monkeypatch.setattr(aredis, "_WATCH_EVERY_S", 0.05)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts (the kernel's backlog), never answers
    port = silent.getsockname()[1]

    async def main() -> None:
        client = aredis.Client(f"redis://127.0.0.1:{port}/0")
        try:
            async with asyncio.timeout(30):
                with pytest.raises(redis.exceptions.TimeoutError):
                    await client.command("PING")
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    finally:
        silent.close()


def test_unreachable_redis_is_a_connection_error() -> None:
    async def main() -> None:
        client = aredis.Client("redis://127.0.0.1:1/0")
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.command("PING")
        await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("reply", [b":42\r\n", b"$5\r\nhello\r\n", b"$-1\r\n", b"*2\r\n:1\r\n$1\r\nx\r\n", b"+OK\r\n",
                                   b"-NOSCRIPT No matching script\r\n"])
def test_a_reply_split_anywhere_is_read_once_whole(reply: bytes) -> None:
    whole = aredis.parse(bytearray(reply), 0)
    assert whole is not None and whole[1] == len(reply)
    for cut in range(1, len(reply)):
        assert aredis.parse(bytearray(reply[:cut]), 0) is None, reply[:cut]
    if reply.startswith(b"-NOSCRIPT"):
        assert isinstance(whole[0], redis.exceptions.NoScriptError)


def test_the_connection_uses_the_url_s_database(redis_url: str) -> None:
    """`redis://host:port/N`: the intake's marks and jobs go to database N, as the synchronous clients' do."""
    key = f"rbtest-db-{uuid.uuid4().hex[:8]}"
    url = redis_url.rsplit("/", 1)[0] + "/3"

    async def main() -> None:
        client = aredis.Client(url)
        try:
            await client.command("SET", key, "here", "PX", 60_000)
        finally:
            await client.aclose()

    asyncio.run(main())
    sync3 = redis.Redis.from_url(url)
    try:
        assert sync3.get(key) == b"here"
        assert redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/0").get(key) is None
    finally:
        sync3.delete(key)
