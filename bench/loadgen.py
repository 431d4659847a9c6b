"""HTTP load generator for the benchmarks (its own process, so that it does not share a GIL with the servers or the
simulators): raw HTTP/1.1 over keep-alive connections, on uvloop when installed.

`python -m bench.loadgen URL BODY_FILE --mode closed --conns 32 --seconds 5` → JSON: requests per second;
`--mode open --rate 500 --seconds 10` → JSON: ack latencies measured from each request's *scheduled* send time (so a
server that falls behind shows a growing latency, not a lower rate), p50 / p99 / max, per second of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlsplit


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


async def connect(host: str, port: int) -> Conn:
    reader, writer = await asyncio.open_connection(host, port)
    return Conn(reader, writer)


def raw_request(url: str, body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return host, port, raw


async def closed_loop(url: str, body: bytes, conns: int, seconds: float) -> dict[str, float]:
    host, port, raw = raw_request(url, body)
    pool = [await connect(host, port) for _ in range(conns)]
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    done = 0

    async def run(conn: Conn) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            status = await conn.request(raw)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1

    # a short warm-up (first requests import lazily, fill caches), not counted
    for conn in pool[:4]:
        await conn.request(raw)
    statuses.clear()
    t0 = time.perf_counter()
    stop = t0 + seconds
    await asyncio.gather(*(run(c) for c in pool))
    elapsed = time.perf_counter() - t0
    for c in pool:
        c.writer.close()
    return {"requests": done, "seconds": elapsed, "rps": done / elapsed,
            "statuses": {str(k): v for k, v in statuses.items()}}  # type: ignore[dict-item]


async def open_loop(url: str, body: bytes, rate: float, seconds: float, conns: int) -> dict[str, object]:
    host, port, raw = raw_request(url, body)
    idle: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(conns):
        idle.put_nowait(await connect(host, port))
    latencies: list[tuple[float, float]] = []  # (scheduled offset, latency)
    statuses: dict[int, int] = {}
    n = int(rate * seconds)
    t0 = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        due = t0 + i / rate
        conn = await idle.get()
        status = await conn.request(raw)
        latencies.append((due - t0, time.perf_counter() - due))
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait(conn)

    tasks = []
    for i in range(n):
        wait = t0 + i / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    lat = sorted(x for _, x in latencies)
    per_second = []
    for s in range(int(seconds)):
        window = sorted(x for t, x in latencies if s <= t < s + 1)
        if window:
            per_second.append(round(window[len(window) // 2] * 1000, 2))
    return {"requests": n, "rate": rate, "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "max_ms": lat[-1] * 1000,
            "mean_ms": statistics.fmean(lat) * 1000, "p50_ms_per_second": per_second,
            "statuses": {str(k): v for k, v in statuses.items()}}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    p.add_argument("url")
    p.add_argument("body_file")
    p.add_argument("--mode", choices=["closed", "open"], default="closed")
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=500.0)
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    body = open(args.body_file, "rb").read()
    if args.mode == "closed":
        result: object = asyncio.run(closed_loop(args.url, body, args.conns, args.seconds))
    else:
        result = asyncio.run(open_loop(args.url, body, args.rate, args.seconds, args.conns))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
