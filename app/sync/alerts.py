"""Failure alerts (issue 11.8): an error that needs a person is posted, signed, to the integration's `alert_url`.

Sent for: a job that gave up (retries exhausted, or a wait that never ended), Graph refusing the integration's
credentials, rooms fallen back to polling (Graph refused their subscription), a client secret expiring within 30 days
when Graph reports it. **At most once per problem per hour** across every process: the first sender takes a lease
named after the problem in the database (`app.platform.leases`) for an hour; the others see it held and stay quiet.
A send that fails gives the lease back, so that the next occurrence of the problem tries again.

The message is JSON, signed like the reverse hooks (`app.core.signing`): header
`RoomBridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(alert_secret, "<t>.<raw body>")>`, plus
`RoomBridge-Delivery: <uuid>`. Without an `alert_secret` nothing is sent (an unsigned alert could be forged by anyone
who knows the URL); the log says so. Secrets never appear in the message.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import httpx
from sqlalchemy.engine import Engine

from app.core.signing import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from app.platform import leases
from app.platform.crypto import SecretBox
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration

AlertKind = Literal["gave_up", "graph_credentials", "polling", "secret_expiring"]
DEDUPE: Final = timedelta(hours=1)
SECRET_WARNING: Final = timedelta(days=30)
TIMEOUT_S: Final = 5.0
log = get_logger("roombridge.alerts")

Post = Callable[[str, bytes, dict[str, str]], int]  # (url, body, headers) → HTTP status


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client:
        return client.post(url, content=body, headers=headers).status_code


def lease_name(integration_id: str, problem: str) -> str:
    """The de-duplication lease of one problem (the lease table's names are at most 64 characters)."""
    return "alert:" + hashlib.sha256(f"{integration_id}|{problem}".encode()).hexdigest()[:40]


def send(engine: Engine, box: SecretBox, integration_id: str, kind: AlertKind, problem: str, message: str,
         details: dict[str, Any] | None = None, *, post: Post = _post) -> bool:
    """Post one alert for `problem` (a stable key: the same problem within the hour is sent once). Never raises:
    an alert that cannot be sent is logged, and the caller's work goes on. Returns whether it was sent."""
    try:
        with session_scope(engine) as s:
            integration = s.get(Integration, integration_id)
        if integration is None or not integration.alert_url:
            return False
        if not integration.alert_secret_enc:
            log.warning("alert not sent: the integration has an alert_url but no alert_secret",
                        integration_id=integration_id, kind=kind)
            return False
        name, holder = lease_name(integration_id, problem), f"alert:{uuid.uuid4().hex}"
        if not leases.acquire(engine, name, holder, DEDUPE):
            log.info("alert already sent within the hour", integration_id=integration_id, kind=kind, problem=problem)
            return False
        body = json.dumps({
            "type": "roombridge.alert", "kind": kind, "problem": problem, "message": message,
            "integration": {"id": integration.id, "name": integration.name},
            "at": datetime.now(UTC).isoformat(), "details": details or {},
        }, sort_keys=True).encode()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(box.decrypt(integration.alert_secret_enc), body),
                   DELIVERY_HEADER: str(uuid.uuid4())}
        try:
            status = post(integration.alert_url, body, headers)
        except httpx.HTTPError as e:
            status = None
            log.warning("alert not delivered", integration_id=integration_id, kind=kind, error=type(e).__name__)
        if status is None or not 200 <= status < 300:
            if status is not None:
                log.warning("alert refused by its receiver", integration_id=integration_id, kind=kind, status=status)
            leases.release(engine, name, holder)  # the next occurrence tries again
            return False
        log.info("alert sent", integration_id=integration_id, kind=kind, problem=problem)
        return True
    except Exception as e:  # noqa: BLE001 - an alert must never make the failing work fail differently
        log.warning("alert failed", integration_id=integration_id, kind=kind, error=type(e).__name__)
        return False


def job_gave_up(engine: Engine, box: SecretBox, integration_id: str, job: str, text: str) -> bool:
    """A job gave up (retries exhausted, or waited too long): one alert per kind of job per hour."""
    return send(engine, box, integration_id, "gave_up", f"gave_up:{job}",
                f"A {job} job gave up and needs a person: {text}", {"job": job})


def graph_credentials_refused(engine: Engine, box: SecretBox, integration_id: str, text: str) -> bool:
    return send(engine, box, integration_id, "graph_credentials", "graph_credentials",
                "Microsoft Graph refused the integration's credentials (client secret wrong or expired, or consent "
                f"missing): nothing syncs until they are fixed. {text}")


def rooms_polling(engine: Engine, box: SecretBox, integration_id: str, rooms: list[str], reason: str) -> bool:
    """Rooms fell back to polling (Graph refused their subscriptions): one alert per hour for the integration."""
    return send(engine, box, integration_id, "polling", "polling",
                f"{len(rooms)} room(s) fell back to polling (changes are seen at the next periodic round, not in "
                f"seconds): {reason}", {"rooms": sorted(rooms)[:50]})


def secret_expiring(engine: Engine, box: SecretBox, integration_id: str, expires_at: datetime,
                    now: datetime | None = None) -> bool:
    """Graph reports the client secret's end date: alert when it is within 30 days (or already past)."""
    now = now or datetime.now(UTC)
    if expires_at - now > SECRET_WARNING:
        return False
    days = max(0, (expires_at - now).days)
    return send(engine, box, integration_id, "secret_expiring", f"secret_expiring:{expires_at.date().isoformat()}",
                f"The client secret expires on {expires_at:%Y-%m-%d} (in {days} day(s)): create a new one and save it "
                "as the integration's client_secret", {"expires_at": expires_at.isoformat()})
