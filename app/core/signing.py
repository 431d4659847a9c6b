"""Reverse-hook signatures (SPEC §7).

`RoomBridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
The booking system (and its simulator) signs; the bridge verifies. One module so both sides agree byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "RoomBridge-Signature"
DELIVERY_HEADER = "RoomBridge-Delivery"
TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, wrong or stale. The message is safe to return to the caller."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for `body` signed now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


def verify(secret: str, body: bytes, header: str | None, now: float | None = None) -> None:
    """Raise `SignatureError` unless `header` signs `body` with `secret` within ±TOLERANCE_S of `now`."""
    if not header:
        raise SignatureError("missing signature")
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature")
        fields.setdefault(key, []).append(value)
    raw_t = fields.get("t", [""])[0]
    # Unix seconds: at most 12 digits, so that no input reaches float arithmetic as an unbounded integer.
    if not (raw_t.isascii() and raw_t.isdigit() and len(raw_t) <= 12):
        raise SignatureError("malformed signature")
    timestamp = int(raw_t)
    candidates = fields.get("v1", [])
    if not candidates:
        raise SignatureError("malformed signature")
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_S:
        raise SignatureError("stale signature")
    expected = _digest(secret, timestamp, body)
    # Several v1 values are allowed so that a secret can be rotated without a gap.
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("invalid signature")
