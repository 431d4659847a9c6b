"""Reverse hooks from the booking system (SPEC §7): verify, deduplicate, enqueue, 202. No booking or Graph call here.

Checks run in this order, so that an unauthenticated sender learns nothing about the payload rules:
unknown integration → 404; body over 1 MiB → 413; missing, wrong or stale signature → 401; unreadable JSON or not a
hook → 400; a delivery id seen before → 202 and nothing enqueued. Accepted → one coalesced job per loan → 202.
"""

from __future__ import annotations

import re

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
from app.web.common import ApiError, error_response, read_body
from app.workers import actors

log = get_logger("roombridge.hooks")

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUEUE_RETRY_AFTER_S = "30"


class _HookLoan(BaseModel):
    id: str = Field(min_length=1, max_length=128)


class _Hook(BaseModel):
    """Only what routing needs: the loan is re-read by the job, so the rest of the payload is not trusted."""

    type: HookType
    loan: _HookLoan


def _integration(integration_id: str) -> tuple[str, bool] | None:
    """(hook secret, whether hooks lead to work) of the integration, or None if unknown."""
    rt = current()
    if len(integration_id) > 36:
        return None
    with Session(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if integration is None:
            return None
        active = integration.enabled and policy_of(integration).booking_to_outlook
        return rt.box.decrypt(integration.hook_secret_enc), active


def _first_delivery(integration_id: str, delivery_id: str) -> bool:
    with Session(current().engine) as s:
        if s.get(SeenDelivery, delivery_id) is not None:
            return False
        s.add(SeenDelivery(delivery_id=delivery_id, integration_id=integration_id))
        try:
            s.commit()
        except IntegrityError:  # the same delivery, concurrently
            return False
    return True


def _forget_delivery(delivery_id: str) -> None:
    """The job could not be enqueued: let the booking system's retry of this delivery through."""
    with Session(current().engine) as s:
        s.exec(delete(SeenDelivery).where(col(SeenDelivery.delivery_id) == delivery_id))
        s.commit()


def _enqueue(integration_id: str, loan_id: str) -> None:
    actors.send_loan_hint(integration_id, loan_id)


async def booking_hook(request: Request) -> Response:
    integration_id = request.path_params["integration_id"]
    found = await run_in_threadpool(_integration, integration_id)
    if found is None:
        HOOKS.labels("rejected").inc()
        raise ApiError(404, "unknown_integration", "no such integration")
    secret, active = found
    body = await read_body(request)
    try:
        verify(secret, body, request.headers.get(SIGNATURE_HEADER))
    except SignatureError as e:
        HOOKS.labels("rejected").inc()
        log.warning("booking hook rejected", integration_id=integration_id, reason=str(e))
        raise ApiError(401, "bad_signature", str(e)) from None
    try:
        hook = _Hook.model_validate_json(body)
    except ValidationError:
        HOOKS.labels("rejected").inc()
        raise ApiError(400, "malformed_hook",
                       'body must be JSON {"type": "loan.created|updated|cancelled|refused", "loan": {"id": …}}'
                       ) from None
    delivery_id = request.headers.get(DELIVERY_HEADER)
    if delivery_id is not None and not _DELIVERY_ID.match(delivery_id):
        HOOKS.labels("rejected").inc()
        raise ApiError(400, "bad_delivery_id", f"{DELIVERY_HEADER} must be 1–128 letters, digits or ._:-")
    if not active:
        HOOKS.labels("ignored").inc()
        return Response(status_code=202)  # disabled, or direction excludes booking → Outlook
    if delivery_id is not None and not await run_in_threadpool(_first_delivery, integration_id, delivery_id):
        HOOKS.labels("duplicate").inc()
        return Response(status_code=202)
    try:
        await run_in_threadpool(_enqueue, integration_id, hook.loan.id)
    except Exception as e:  # noqa: BLE001 - any broker failure means "not durably enqueued": let the sender retry
        log.error("queue unavailable", error=type(e).__name__)
        if delivery_id is not None:
            await run_in_threadpool(_forget_delivery, delivery_id)
        return error_response(503, "queue_unavailable", "the job queue cannot be reached; retry later",
                              headers={"Retry-After": QUEUE_RETRY_AFTER_S})
    HOOKS.labels("accepted").inc()
    log.info("booking hook accepted", integration_id=integration_id, loan_id=hook.loan.id, type=hook.type)
    return Response(status_code=202)
