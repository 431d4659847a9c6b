"""Redis from an event loop: what the intake needs to claim hints and enqueue jobs without leaving the loop (issue
9.1: a thread-pool hop per request was most of the Redis intake's cost).

One `Client` per process (built and closed by the web app's lifespan): **one connection, pipelined** — the commands
of every caller of one turn of the event loop go out in one write and Redis answers in order, so the requests in
flight share the connection (and its system calls) without waiting for each other's round trips. Lua scripts run
by their SHA1 (`EVALSHA`); a script Redis does not know (a restarted or flushed Redis) is loaded and only the calls
it refused run again.

Why not `redis.asyncio` (tried first; measured with `bench intake`, py-spy and a micro-benchmark on this 2-core VM):
each of its round trips costs ~80-120 µs of CPU (connection pool, retry and stream-reader layers) whatever it
carries, ~25 µs a call in pipelines of 32; this protocol costs ~10-15 µs a call with concurrent callers. A socket
write costs ~30 µs of CPU on this VM, hence one write per turn of the loop. The URL is read by redis-py's own parser
(`redis://`, `rediss://`, `unix://`, user, password, db).

Failures: an unreachable Redis, a lost connection or one that does not answer within `SOCKET_TIMEOUT_S` raise
`redis.exceptions.ConnectionError` / `TimeoutError` to every caller waiting on it (the intake answers 503) and the
next call connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.exceptions
from redis.asyncio.connection import parse_url
from redis.exceptions import NoScriptError, ResponseError

CONNECT_TIMEOUT_S = 2.0
# Graph drops endpoints that are often slower than ~3 s: past this a stuck Redis is an outage (503, Graph retries).
SOCKET_TIMEOUT_S = 2.5
_WATCH_EVERY_S = 0.5


@dataclass(frozen=True)
class Script:
    text: bytes
    sha: str

    @classmethod
    def of(cls, text: str | bytes) -> Script:
        raw = text.encode() if isinstance(text, str) else text
        return cls(raw, hashlib.sha1(raw).hexdigest())  # noqa: S324 - Redis names scripts by SHA1


@dataclass(frozen=True)
class Call:
    script: Script
    keys: Sequence[str]
    args: Sequence[str | int | bytes]


def pack(*args: str | int | bytes) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


def parse(buf: bytearray, pos: int) -> tuple[Any, int] | None:
    """One RESP2 reply from `buf` at `pos`: (value, position after it), or None if it has not all arrived. An error
    reply is a `ResponseError` value (`NoScriptError` for NOSCRIPT), not raised."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line, after = buf[pos], bytes(buf[pos + 1:end]), end + 2
    if kind == 58:  # ':' integer
        return int(line), after
    if kind == 36:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, after  # nil
        if len(buf) < after + size + 2:
            return None
        return bytes(buf[after:after + size]), after + size + 2
    if kind == 43:  # '+' simple string
        return line, after
    if kind == 45:  # '-' error
        message = line.decode(errors="replace")
        return (NoScriptError if message.startswith("NOSCRIPT") else ResponseError)(message), after
    if kind == 42:  # '*' array
        count = int(line)
        items: list[Any] = []
        for _ in range(max(count, 0)):
            got = parse(buf, after)
            if got is None:
                return None
            items.append(got[0])
            after = got[1]
        return (items if count >= 0 else None), after
    raise redis.exceptions.InvalidResponse(f"unexpected reply type {chr(kind)!r}")


class _Connection(asyncio.Protocol):
    """One Redis connection: commands written as they come, replies handed to their callers in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()  # (caller, deadline)
        self.closed = False
        self._buf = bytearray()
        self._out: list[bytes] = []  # commands to write at the end of this turn of the event loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport's

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        try:
            while self.waiting:
                got = parse(buf, pos)
                if got is None:
                    break
                pos = got[1]
                future, _ = self.waiting.popleft()
                if not future.done():
                    future.set_result(got[0])
        except Exception as e:  # noqa: BLE001 - a reply we cannot read: the stream is lost
            self.fail(redis.exceptions.ConnectionError(f"unreadable reply from Redis: {type(e).__name__}"))
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.exceptions.ConnectionError("connection to Redis lost"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, commands: list[bytes]) -> list[asyncio.Future[Any]]:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise redis.exceptions.ConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + SOCKET_TIMEOUT_S
        futures = [loop.create_future() for _ in commands]
        self.waiting.extend((f, deadline) for f in futures)
        if not self._out:
            loop.call_soon(self._write)
        self._out += commands
        return futures

    def _write(self) -> None:
        """One write for the commands of every caller of this turn: on this VM a socket write costs ~30 µs of CPU,
        more than a command."""
        out, self._out = self._out, []
        if out and not self.closed and self.transport is not None:
            self.transport.write(b"".join(out))

    def overdue(self, now: float) -> bool:
        return bool(self.waiting) and self.waiting[0][1] < now


class Client:
    """The process's Redis on its event loop: `run` scripts, `command` anything else."""

    def __init__(self, url: str) -> None:
        self._options = parse_url(url)
        self._conn: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._watch: asyncio.TimerHandle | None = None

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's reply, in order, or the `ResponseError` Redis answered it with. An unreachable, lost or
        silent Redis raises (`redis.exceptions.ConnectionError` / `TimeoutError`): then any of the calls may or may
        not have run."""
        if not calls:
            return []
        results = await self._send([pack("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args) for c in calls])
        unknown = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if unknown:
            for script in {calls[i].script for i in unknown}:
                loaded = (await self._send([pack("SCRIPT", "LOAD", script.text)]))[0]
                if isinstance(loaded, ResponseError):
                    raise loaded
            again = await self._send([pack("EVALSHA", calls[i].script.sha, len(calls[i].keys), *calls[i].keys,
                                           *calls[i].args) for i in unknown])
            for i, reply in zip(unknown, again, strict=True):
                results[i] = reply
        return results

    async def command(self, *args: str | int | bytes) -> Any:
        """One command's reply; an error reply is raised."""
        reply = (await self._send([pack(*args)]))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _send(self, commands: list[bytes]) -> list[Any]:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        return [await f for f in conn.send(commands)]

    async def _connect(self) -> _Connection:
        async with self._connecting:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            o = self._options
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    if "path" in o:
                        _, conn = await loop.create_unix_connection(_Connection, o["path"])
                    else:
                        _, conn = await loop.create_connection(_Connection, o.get("host", "localhost"),
                                                               o.get("port", 6379), ssl=self._ssl())
            except (OSError, TimeoutError) as e:
                raise redis.exceptions.ConnectionError(f"Redis unreachable: {type(e).__name__}") from None
            hello: list[bytes] = []
            if o.get("password"):
                hello.append(pack("AUTH", *([o["username"]] if o.get("username") else []), o["password"]))
            if int(o.get("db") or 0):
                hello.append(pack("SELECT", int(o["db"])))
            if hello:
                for reply in [await f for f in conn.send(hello)]:
                    if isinstance(reply, ResponseError):
                        conn.fail(redis.exceptions.ConnectionError("Redis refused the connection's setup"))
                        raise redis.exceptions.ConnectionError("Redis refused the connection's setup (AUTH/SELECT)")
            self._conn = conn
            if self._watch is None:
                self._watch = loop.call_later(_WATCH_EVERY_S, self._watchdog)
            return conn

    def _ssl(self) -> ssl.SSLContext | None:
        if "connection_class" not in self._options or "SSL" not in self._options["connection_class"].__name__:
            return None
        context = ssl.create_default_context()
        if str(self._options.get("ssl_cert_reqs", "required")).lower() == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _watchdog(self) -> None:
        """A connection that leaves its oldest command unanswered past `SOCKET_TIMEOUT_S` is dropped (its callers
        get a TimeoutError; the next call connects again)."""
        self._watch = None
        conn = self._conn
        if conn is None or conn.closed:
            return
        if conn.overdue(time.monotonic()):
            conn.fail(redis.exceptions.TimeoutError("Redis did not answer in time"))
            return
        self._watch = asyncio.get_running_loop().call_later(_WATCH_EVERY_S, self._watchdog)

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if conn.transport is not None:
                conn.transport.close()
            conn.closed = True
