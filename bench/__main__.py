"""`python -m bench NAME [options]` — run one benchmark."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "intake": "bench.intake",  # valid notifications per second against a bare 202 route; ack latency at 500 req/s
    "workers": "bench.workers",  # changes applied per second by 2 workers against a no-op dramatiq actor
    "latency": "bench.latency",  # change on one side → seen on the other, p50 / p95, both directions
    "burst": "bench.burst",  # 200 meetings changed, each notified 3 times: Graph reads per change, mailbox concurrency
    "rooms": "bench.rooms",  # N rooms imported + subscribed (100 / 1,000 / 10,000), peak RSS, the renewal pass
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print("usage: python -m bench {" + ",".join(BENCHMARKS) + "} [options]")
        for name, module in BENCHMARKS.items():
            print(f"  {name:<8} {importlib.import_module(module).__doc__.strip().splitlines()[0]}")
        return 2
    return int(importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
