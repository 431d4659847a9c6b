"""Logs are JSON lines; secrets and tracebacks' local variables never appear in them."""

from __future__ import annotations

import json
import logging

from app.platform.logging import configure_logging, get_logger, request_id_var


def test_json_lines_with_request_id_and_redaction(capfd) -> None:
    configure_logging("json", "info")
    token = request_id_var.set("req-42")
    try:
        get_logger("t").info("connecting", client_secret="hunter2", api_key="k-123", room="Salle Jupiter")
        logging.getLogger("uvicorn.error").warning("stdlib record")
    finally:
        request_id_var.reset(token)
    lines = [json.loads(line) for line in capfd.readouterr().err.strip().splitlines()]
    assert lines[0]["event"] == "connecting" and lines[0]["request_id"] == "req-42"
    assert lines[0]["client_secret"] == "[redacted]" and lines[0]["api_key"] == "[redacted]"
    assert lines[1]["event"] == "stdlib record" and lines[1]["logger"] == "uvicorn.error"


def test_tracebacks_carry_no_local_variables(capfd) -> None:
    configure_logging("json", "info")

    def failing(client_secret: str) -> None:
        password = "s3cr3t-local"  # noqa: F841 - a local that must not be rendered
        raise RuntimeError("boom")

    try:
        failing("hunter2-param")
    except RuntimeError:
        get_logger("t").exception("failed")
    err = capfd.readouterr().err
    assert "boom" in err
    assert "s3cr3t-local" not in err and "hunter2-param" not in err
