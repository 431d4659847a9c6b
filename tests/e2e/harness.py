"""The end-to-end tests' view of `simulators.processes`, with the test suite's admin token and secret key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simulators.processes import Bridge, wait_for
from simulators.processes import run_bridge as _run_bridge
from simulators.sandbox import Sandbox
from tests.conftest import ADMIN_TOKEN, SECRET_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# How long a test waits for the bridge to do something. Generous on purpose: a condition that holds returns at once,
# so only a failing test waits this long, and a loaded machine (CI, other suites running) must not fail a good one.
WAIT = 120.0
__all__ = ["AUTH", "WAIT", "Bridge", "run_bridge", "wait_for"]


@contextmanager
def run_bridge(sandbox: Sandbox, tmp_path: Path, database_url: str, redis_url: str | None = None,
               workers: int = 1, **kw: Any) -> Iterator[Bridge]:
    with _run_bridge(sandbox, tmp_path, database_url, redis_url, workers, ADMIN_TOKEN, SECRET_KEY, **kw) as bridge:
        yield bridge
