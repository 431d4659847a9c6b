"""Under CI=true, tests that need PostgreSQL or Redis fail when the server is missing; locally they are skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLOSED = {"ROOMBRIDGE_TEST_PG": "postgresql://postgres@127.0.0.1:1/postgres",
          "ROOMBRIDGE_TEST_REDIS": "redis://127.0.0.1:1/0"}


def run(ci: str, which: str) -> subprocess.CompletedProcess[str]:
    test = {"ROOMBRIDGE_TEST_PG": "tests/test_migrations.py::test_migrate_is_idempotent",
            "ROOMBRIDGE_TEST_REDIS": "tests/test_intake.py::test_wrong_method_is_405"}[which]
    env = {**os.environ, "CI": ci, which: CLOSED[which]}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("which", sorted(CLOSED))
def test_missing_server_fails_under_ci(which: str) -> None:
    result = run("true", which)
    assert result.returncode != 0, result.stdout
    assert "not reachable" in result.stdout and "error" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("which", sorted(CLOSED))
def test_missing_server_skips_locally(which: str) -> None:
    result = run("", which)
    assert result.returncode == 0, result.stdout
    assert "skipped" in result.stdout.splitlines()[-1]
