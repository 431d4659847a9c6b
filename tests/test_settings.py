"""Settings are validated at start: a bad value stops the process with one line naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.platform.settings import SettingsError, load_settings

GOOD = {"ADMIN_TOKEN": "a" * 20, "SECRET_KEY": "k" * 32}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("env, name", [
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"ADMIN_TOKEN": "x"}, "ADMIN_TOKEN"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"GRAPH_BASE_URL": "http://graph.example.com/v1.0"}, "GRAPH_BASE_URL"),
    ({"GRAPH_AUTHORITY_HOST": "http://login.example.com/x"}, "GRAPH_AUTHORITY_HOST"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"PUBLIC_BASE_URL": "not a url"}, "PUBLIC_BASE_URL"),
])
def test_bad_value_stops_with_one_line_naming_the_variable(env, name) -> None:
    result = run_cli({**GOOD, **env}, "migrate")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], result.stderr
    assert "k" * 32 not in result.stderr


def test_missing_required_values_are_named() -> None:
    result = run_cli({}, "serve")
    assert result.returncode == 2
    assert "ADMIN_TOKEN is required" in result.stderr and "SECRET_KEY is required" in result.stderr


def test_plain_http_graph_is_accepted_only_on_loopback(monkeypatch) -> None:
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    assert load_settings(graph_base_url="http://127.0.0.1:9999/v1.0").graph_base_url == "http://127.0.0.1:9999/v1.0"
    assert load_settings(graph_base_url="http://[::1]:9999/v1.0").graph_base_url.startswith("http://[::1]")
    with pytest.raises(SettingsError, match="GRAPH_BASE_URL"):
        load_settings(graph_base_url="http://10.0.0.1/v1.0")


def test_defaults(monkeypatch) -> None:
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert s.graph_authority_host == "login.microsoftonline.com"
    assert s.embedded_queue and s.database_url.startswith("sqlite")


def test_scheduler_without_redis_points_to_serve() -> None:
    result = run_cli(GOOD, "scheduler")
    assert result.returncode == 2 and "REDIS_URL" in result.stderr and "serve" in result.stderr
