"""The status page `/status` (issue 10.7): server-rendered HTML (Jinja2), behind the admin token.

Sign-in takes the admin token once and sets a signed session cookie (HMAC-SHA256 under a key derived from
SECRET_KEY; HttpOnly, SameSite=Strict, Secure when PUBLIC_BASE_URL is https; valid 12 h). Every form posts a CSRF
token (an HMAC of the session cookie) besides the SameSite cookie; a missing or wrong one is a 403. Buttons run the
same code as the admin API: retry, mark handled, sync rooms, test connection, backfill. *Backfill from a date* is
two steps: the date's form (a GET) shows what it covers — meetings, room events and loans, counted — and only the
confirmation on that page (a CSRF-checked POST) starts it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app.platform.models import Integration, JournalEntry, Room, RoomsImport, Subscription
from app.sync import connection
from app.sync.rooms import active_rooms
from app.sync.runtime import current
from app.web import worklist
from app.web.admin import (
    _enqueue_import,
    _enqueue_reconcile,
    backfill_preview_of,
    failed_authentications,
    since_param,
)
from app.web.common import ApiError, answer_outages, read_body, safe_id

COOKIE = "roombridge_session"
SESSION_S = 12 * 3600
MAX_FORM = 8 * 1024
OUTCOMES = ("synced", "skipped", "invalid", "waiting", "error", "handled", "resolved")
_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))


def _key() -> bytes:
    secret = current().settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, b"roombridge status-page session", hashlib.sha256).digest()


def _sign(text: str) -> str:
    return hmac.new(_key(), text.encode(), hashlib.sha256).hexdigest()


def _new_session() -> str:
    issued = str(int(time.time()))
    return f"{issued}.{_sign('session:' + issued)}"


def _session(request: Request) -> str | None:
    value = request.cookies.get(COOKIE, "")
    issued, _, signature = value.partition(".")
    if not issued.isdigit() or len(issued) > 12 or not hmac.compare_digest(signature, _sign("session:" + issued)):
        return None
    if time.time() - int(issued) > SESSION_S:
        return None
    return value


def _csrf(session: str) -> str:
    return _sign("csrf:" + session)


async def _form(request: Request) -> dict[str, str]:
    body = await read_body(request, MAX_FORM)
    try:
        parsed = parse_qs(body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed_form", "the form could not be read") from None
    return {k: v[0] for k, v in parsed.items()}


async def _checked_form(request: Request) -> dict[str, str]:
    """The form of a signed-in admin with its CSRF token; 403 otherwise."""
    session = _session(request)
    form = await _form(request)
    if session is None or not hmac.compare_digest(form.get("csrf", ""), _csrf(session)):
        raise ApiError(403, "forbidden", "sign in again (session or form token missing or wrong)")
    return form


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(**context), status_code=status,
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"})


def _back(flash: str) -> RedirectResponse:
    return RedirectResponse(f"/status?flash={quote(flash)}", status_code=303)


@answer_outages(unexpected_as_503=False)
async def sign_in_page(request: Request) -> Response:
    return _page("sign_in.html", title="sign in", error=None)


@answer_outages(unexpected_as_503=False)
async def sign_in(request: Request) -> Response:
    form = await _form(request)
    token = form.get("token", "")
    expected = current().settings.admin_token.get_secret_value()
    client = request.client.host if request.client else "unknown"
    failures = failed_authentications(request)
    if not hmac.compare_digest(token.encode(), expected.encode()):
        await failures.failed(client, "wrong token (status page)")
        return _page("sign_in.html", status=401, title="sign in", error="That is not the admin token.")
    failures.succeeded(client)
    response = RedirectResponse("/status", status_code=303)
    secure = current().settings.public_base_url.startswith("https://")
    response.set_cookie(COOKIE, _new_session(), max_age=SESSION_S, httponly=True, samesite="strict", secure=secure,
                        path="/status")
    return response


@answer_outages(unexpected_as_503=False)
async def sign_out(request: Request) -> Response:
    await _checked_form(request)
    response = RedirectResponse("/status/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/status")
    return response


def _summary(s: Session, integration: Integration) -> dict[str, Any]:
    rooms = active_rooms(s, integration.id)
    inactive = s.exec(select(Room).where(col(Room.integration_id) == integration.id, col(Room.active).is_(False))).all()
    last_import = s.exec(select(RoomsImport).where(col(RoomsImport.integration_id) == integration.id)
                         .order_by(col(RoomsImport.started_at).desc()).limit(1)).first()
    by_id = {r.id: r.email for r in rooms}
    subs = s.exec(select(Subscription).where(col(Subscription.integration_id) == integration.id,
                                             col(Subscription.status) == "active")
                  .order_by(col(Subscription.expires_at))).all()
    errors = s.exec(select(JournalEntry).where(col(JournalEntry.integration_id) == integration.id,
                                               col(JournalEntry.status) == "error",
                                               col(JournalEntry.action) != "wait")
                    .order_by(col(JournalEntry.at).desc()).limit(50)).all()
    until = datetime.now(UTC)
    stats = worklist.stats_of(s, integration.id, until - timedelta(days=7), until, "day")
    for period in stats["periods"]:
        by_outcome: Counter[str] = Counter()
        for counts in period["counts"].values():
            by_outcome.update(counts)
        period["by_outcome"] = dict(by_outcome)
    return {
        "id": integration.id, "name": integration.name, "enabled": integration.enabled,
        "tenant_domain": integration.tenant_domain, "direction": integration.direction,
        "ignore_tags": integration.ignore_tags,
        "rooms": {"active": len(rooms), "polled": sorted(r.email for r in rooms if r.polling),
                  "ignored": last_import.ignored if last_import is not None else "—", "inactive": len(inactive)},
        "subscriptions": [{"room": by_id.get(sub.room_id, sub.room_id),
                           "expires_at": f"{sub.expires_at:%Y-%m-%d %H:%M} UTC",
                           "renewed_at": f"{sub.renewed_at:%Y-%m-%d %H:%M} UTC" if sub.renewed_at else None}
                          for sub in subs],
        "connection": connection.last_result(s, integration.id),
        "errors": [worklist.entry_view(e) for e in errors],
        "stats": stats,
    }


@answer_outages(unexpected_as_503=False)
async def status_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return RedirectResponse("/status/sign-in", status_code=303)
    flash = request.query_params.get("flash", "")[:300]

    def work() -> list[dict[str, Any]]:
        with Session(current().engine) as s:
            return [_summary(s, i) for i in s.exec(select(Integration).order_by(col(Integration.created_at))).all()]

    integrations = await run_in_threadpool(work)
    return _page("status.html", title="status", integrations=integrations, csrf=_csrf(session), flash=flash,
                 outcomes=OUTCOMES)


def _entry_id(request: Request) -> str:
    entry_id = request.path_params["id"]
    if not safe_id(entry_id, worklist.ENTRY_ID_MAX):
        raise ApiError(404, "not_found", "no such journal entry")
    return str(entry_id)


def _integration_id(request: Request) -> str:
    integration_id = request.path_params["id"]
    if not safe_id(integration_id, 36):
        raise ApiError(404, "not_found", "no such integration")
    return str(integration_id)


@answer_outages(unexpected_as_503=False)
async def retry(request: Request) -> Response:
    await _checked_form(request)
    entry_id = _entry_id(request)

    jobs = await run_in_threadpool(worklist.retry, entry_id)
    return _back(f"Retry queued ({jobs} job{'s' if jobs != 1 else ''}).")


@answer_outages(unexpected_as_503=False)
async def mark_handled(request: Request) -> Response:
    await _checked_form(request)
    entry_id = _entry_id(request)

    await run_in_threadpool(worklist.handled, entry_id)
    return _back("Marked handled: it will not be retried until a newer change arrives.")


@answer_outages(unexpected_as_503=False)
async def sync_rooms(request: Request) -> Response:
    await _checked_form(request)
    integration_id = _integration_id(request)

    def work() -> None:
        with Session(current().engine) as s:
            integration = s.get(Integration, integration_id)
            if integration is None:
                raise ApiError(404, "not_found", "no such integration")
            if not integration.enabled:
                raise ApiError(409, "disabled", "enable the integration first")
        _enqueue_import(integration_id)

    await run_in_threadpool(work)
    return _back("Rooms import queued.")


@answer_outages(unexpected_as_503=False)
async def test_connection(request: Request) -> Response:
    await _checked_form(request)
    integration_id = _integration_id(request)

    def work() -> bool:
        rt = current()
        with Session(rt.engine) as s:
            if s.get(Integration, integration_id) is None:
                raise ApiError(404, "not_found", "no such integration")
        return bool(connection.check_connection(rt, integration_id)["ok"])

    ok = await run_in_threadpool(work)
    return _back("Connection test: all checks passed." if ok else "Connection test: some checks failed (see below).")


@answer_outages(unexpected_as_503=False)
async def backfill_preview(request: Request) -> Response:
    """Step 1 of *Backfill from a date*: what that date covers (meetings, room events, loans), counted before the
    admin confirms; the confirmation posts to `backfill` (step 2). A GET: it counts, it changes nothing."""
    session = _session(request)
    if session is None:
        return RedirectResponse("/status/sign-in", status_code=303)
    integration_id = _integration_id(request)
    day = since_param(request.query_params.get("since"))

    def work() -> tuple[str, dict[str, Any]]:
        with Session(current().engine) as s:
            integration = s.get(Integration, integration_id)
            name = integration.name if integration is not None else integration_id
        return name, backfill_preview_of(integration_id, day)

    name, preview = await run_in_threadpool(work)
    return _page("backfill.html", title="backfill", csrf=_csrf(session), integration_id=integration_id,
                 integration_name=name, preview=preview)


@answer_outages(unexpected_as_503=False)
async def backfill(request: Request) -> Response:
    form = await _checked_form(request)
    integration_id = _integration_id(request)
    try:
        since = date.fromisoformat(form.get("since", ""))
    except ValueError:
        raise ApiError(422, "invalid", "since must be a date") from None
    rooms = await run_in_threadpool(_enqueue_reconcile, integration_id, True, since.isoformat())
    return _back(f"Backfill from {since.isoformat()} queued for {rooms} room(s) and the booking side.")


routes = [
    Route("/status", status_page, methods=["GET"]),
    Route("/status/sign-in", sign_in_page, methods=["GET"]),
    Route("/status/sign-in", sign_in, methods=["POST"]),
    Route("/status/sign-out", sign_out, methods=["POST"]),
    Route("/status/journal/{id}/retry", retry, methods=["POST"]),
    Route("/status/journal/{id}/mark-handled", mark_handled, methods=["POST"]),
    Route("/status/integrations/{id}/sync-rooms", sync_rooms, methods=["POST"]),
    Route("/status/integrations/{id}/test-connection", test_connection, methods=["POST"]),
    Route("/status/integrations/{id}/backfill", backfill_preview, methods=["GET"]),
    Route("/status/integrations/{id}/backfill", backfill, methods=["POST"]),
]
