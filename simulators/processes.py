"""Run the real bridge as subprocesses (serve, and workers when on Redis) against a sandbox: what the end-to-end
tests and the benchmarks do."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from simulators.sandbox import GraphHost, Sandbox
from simulators.server import free_port

T = TypeVar("T")
DEFAULT_ADMIN_TOKEN = secrets.token_urlsafe(24)
DEFAULT_SECRET_KEY = secrets.token_urlsafe(32)


def wait_for(check: Callable[[], T], timeout: float = 120.0, what: str = "condition", interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError):
            last = None
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Bridge:
    """The bridge's processes and an admin client on its HTTP port."""

    def __init__(self, base_url: str, processes: list[subprocess.Popen], logs: list[Path], admin_token: str) -> None:
        self.base_url = base_url
        self.processes = processes
        self.logs = logs
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, **kw)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


@contextmanager
def run_bridge(sandbox: Sandbox | GraphHost, tmp_path: Path, database_url: str, redis_url: str | None = None,
               workers: int = 1, admin_token: str = DEFAULT_ADMIN_TOKEN, secret_key: str = DEFAULT_SECRET_KEY,
               extra_env: dict[str, str] | None = None) -> Iterator[Bridge]:
    """The schema migrated (as `roombridge migrate` would), then `serve` (+ `worker` ×`workers` on Redis) as
    subprocesses; logs go to `tmp_path`. Given a `GraphHost`, the bridge reaches every sandbox started on it."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))},
        **sandbox.bridge_env(),
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ADMIN_TOKEN": admin_token,
        "SECRET_KEY": secret_key,
        "WORKER_THREADS": "4",  # a default: `extra_env` may set another (bench burst --threads)
        **(extra_env or {}),
        "LOG_FORMAT": "json",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    cli = [sys.executable, "-m", "app.cli"]
    # What `roombridge migrate` does, in this process: one interpreter start (seconds on a busy machine) less per
    # bridge; the command itself is tested on its own (tests/test_settings.py).
    from app.platform.migrate import upgrade

    upgrade(database_url)
    commands = [[*cli, "serve", "--host", "127.0.0.1", "--port", str(port)]]
    if redis_url:
        commands += [[*cli, "worker"] for _ in range(workers)]
    processes, logs = [], []
    try:
        for i, command in enumerate(commands):
            log = tmp_path / f"bridge-{i}-{command[3]}.log"
            logs.append(log)
            processes.append(subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT))
        bridge = Bridge(f"http://127.0.0.1:{port}", processes, logs, admin_token)
        wait_for(lambda: bridge.http.get("/readyz").status_code == 200, 180, "the bridge to be ready")
        yield bridge
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
