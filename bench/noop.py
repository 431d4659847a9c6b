"""The baseline of `bench workers`: a dramatiq worker process whose one actor does nothing but count (one Redis
INCR), on a RedisBroker like the bridge's (`python -m bench.noop --redis URL --namespace NS --threads T`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker


def build(url: str, namespace: str) -> tuple[RedisBroker, dramatiq.Actor]:  # type: ignore[type-arg]
    broker = RedisBroker(url=url, namespace=namespace)
    counter = redis.Redis.from_url(url)

    started = threading.Event()

    @dramatiq.actor(broker=broker, queue_name="hints", max_retries=0)
    def noop(n: int) -> None:
        if not started.is_set():  # this process's CPU time at its first message (bench workers: CPU per message)
            started.set()
            counter.set(f"{namespace}:cpu0:{os.getpid()}", time.process_time())
        done = counter.incr(f"{namespace}:done")
        if done == 1:
            counter.set(f"{namespace}:first", time.time())
        counter.set(f"{namespace}:last", time.time())

    return broker, noop


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.noop")
    p.add_argument("--redis", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args(argv)
    broker, _ = build(args.redis, args.namespace)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=args.threads, worker_timeout=200)
    worker.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    worker.stop()
    broker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
