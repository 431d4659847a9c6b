"""Reverse hooks from the booking system (SPEC §7): verify, deduplicate, enqueue, 202. No booking or Graph call here.

Checks run in this order, so that an unauthenticated sender learns nothing about the payload rules nor about which
integrations exist: body over 1 MiB → 413; unknown integration, or missing, wrong or stale signature → the same 401
(an unknown integration is checked against a throwaway secret, so it costs the same HMAC and answers the same body);
unreadable JSON or not a hook → 400; a delivery id this integration has seen before → 202 and nothing enqueued.
Accepted → one coalesced job per loan → 202. Database or queue unreachable → 503 + Retry-After; never a 500.
"""

from __future__ import annotations

import re
import secrets

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from app.core.contract import HookType
from app.core.signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from app.platform.logging import get_logger
from app.platform.metrics import HOOKS
from app.platform.models import Integration, SeenDelivery
from app.sync.integrations import policy_of
from app.sync.runtime import current
from app.web.common import ApiError, answer_outages, read_body, safe_id, unavailable
from app.workers import actors

log = get_logger("roombridge.hooks")

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_LOAN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # Link.loan_id is 128; no NUL, no controls, no slash (URL path)
INTEGRATION_ID_MAX = 36  # Integration.id
MAX_SIGNATURE_HEADER = 2048  # a timestamp and a few v1 digests
# `t=` is Unix seconds: 12 digits reach year 33658. A longer one is refused before any arithmetic (a 400-digit
# integer minus a float raised OverflowError).
_TIMESTAMP = re.compile(r"(?:^|,)\s*t=(-?\d*)")
MAX_TIMESTAMP_DIGITS = 12
# What a request for an unknown integration is verified against: a secret nobody knows, so it always fails the
# same way a wrong signature fails for a known one.
_NOBODY_KNOWS = secrets.token_urlsafe(32)


class _HookLoan(BaseModel):
    id: str = Field(min_length=1, max_length=128, pattern=_LOAN_ID.pattern)
    # The loan's version names the change: repeats of one hook coalesce on it (platform/hints.py). Any value is
    # accepted (the job re-reads the loan); only a plain integer is used.
    version: object = None

    def change_tag(self) -> str:
        v = self.version
        return f"v{v}" if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**18 else ""


class _Hook(BaseModel):
    """Only what routing needs: the loan is re-read by the job, so the rest of the payload is not trusted."""

    type: HookType
    loan: _HookLoan


def _integration(integration_id: str) -> tuple[str, bool] | None:
    """(hook secret, whether hooks lead to work) of the integration, or None if unknown."""
    rt = current()
    if not safe_id(integration_id, INTEGRATION_ID_MAX):
        return None  # no such id can exist: no query (a NUL would be a PostgreSQL error)
    with Session(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if integration is None:
            return None
        active = integration.enabled and policy_of(integration).booking_to_outlook
        return rt.box.decrypt(integration.hook_secret_enc), active


def _first_delivery(integration_id: str, delivery_id: str) -> bool:
    """Remember the delivery for this integration; False if this integration has seen it before (delivery ids are
    the sender's, so only unique per integration: another tenant's ids never silence this one's)."""
    with Session(current().engine) as s:
        if s.get(SeenDelivery, (integration_id, delivery_id)) is not None:
            return False
        s.add(SeenDelivery(delivery_id=delivery_id, integration_id=integration_id))
        try:
            s.commit()
        except IntegrityError:  # the same delivery, concurrently
            return False
    return True


def _forget_delivery(integration_id: str, delivery_id: str) -> None:
    """The job could not be enqueued: let the booking system's retry of this delivery through."""
    with Session(current().engine) as s:
        s.exec(delete(SeenDelivery).where(col(SeenDelivery.integration_id) == integration_id,
                                          col(SeenDelivery.delivery_id) == delivery_id))
        s.commit()


def _enqueue(integration_id: str, loan_id: str, tag: str) -> None:
    actors.send_loan_hint(integration_id, loan_id, tag)


def _check_signature(secret: str, body: bytes, header: str | None) -> None:
    """`verify`, with the header's size and its timestamp's magnitude bounded first."""
    if header is not None:
        if len(header) > MAX_SIGNATURE_HEADER:
            raise SignatureError("malformed signature")
        for digits in _TIMESTAMP.findall(header):
            if len(digits.lstrip("-")) > MAX_TIMESTAMP_DIGITS:
                raise SignatureError("malformed signature")
    try:
        verify(secret, body, header)
    except SignatureError:
        raise
    except (OverflowError, ValueError):  # arithmetic on a header that passed the checks above: still malformed
        raise SignatureError("malformed signature") from None


@answer_outages(unexpected_as_503=True)
async def booking_hook(request: Request) -> Response:
    integration_id = request.path_params["integration_id"]
    body = await read_body(request)
    found = await run_in_threadpool(_integration, integration_id)
    secret, active = found if found is not None else (_NOBODY_KNOWS, False)
    try:
        _check_signature(secret, body, request.headers.get(SIGNATURE_HEADER))
        if found is None:
            raise SignatureError("invalid signature")  # unreachable in practice: nobody signs with _NOBODY_KNOWS
    except SignatureError as e:
        HOOKS.labels("rejected").inc()
        log.warning("booking hook rejected", integration_known=found is not None, reason=str(e))
        # The same answer for an unknown integration and a bad signature: no existence oracle.
        raise ApiError(401, "bad_signature", str(e)) from None
    try:
        hook = _Hook.model_validate_json(body)
    except ValidationError:
        HOOKS.labels("rejected").inc()
        raise ApiError(400, "malformed_hook",
                       'body must be JSON {"type": "loan.created|updated|cancelled|refused", "loan": {"id": …}} '
                       "(loan id: 1–128 letters, digits or ._:-)") from None
    delivery_id = request.headers.get(DELIVERY_HEADER)
    if delivery_id is not None and not _DELIVERY_ID.fullmatch(delivery_id):
        HOOKS.labels("rejected").inc()
        raise ApiError(400, "bad_delivery_id", f"{DELIVERY_HEADER} must be 1–128 letters, digits or ._:-")
    if not active:
        HOOKS.labels("ignored").inc()
        return Response(status_code=202)  # disabled, or direction excludes booking → Outlook
    if delivery_id is not None and not await run_in_threadpool(_first_delivery, integration_id, delivery_id):
        HOOKS.labels("duplicate").inc()
        return Response(status_code=202)
    try:
        await run_in_threadpool(_enqueue, integration_id, hook.loan.id, hook.loan.change_tag())
    except Exception as e:  # noqa: BLE001 - any broker failure means "not durably enqueued": let the sender retry
        log.error("queue unavailable", error=type(e).__name__)
        if delivery_id is not None:
            await run_in_threadpool(_forget_delivery, integration_id, delivery_id)
        return unavailable("queue")
    HOOKS.labels("accepted").inc()
    log.info("booking hook accepted", integration_id=integration_id, loan_id=hook.loan.id, type=hook.type)
    return Response(status_code=202)
