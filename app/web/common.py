"""What every handler shares: JSON errors, bounded body reading, input checks, outages answered 503, the request id
middleware."""

from __future__ import annotations

import functools
import itertools
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import redis.exceptions
import sqlalchemy.exc
from dramatiq.errors import BrokerError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.logging import get_logger, request_id_var

MAX_BODY_BYTES = 1024 * 1024  # SPEC §5: over 1 MiB → 413
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Ids that come from outside (Graph subscription ids, integration ids in URLs, delivery and loan ids) are checked
# against this before any database read: printable ASCII without spaces or quotes, so no NUL (PostgreSQL refuses it
# in text) and no control characters; the length is the column's (`max_length` of the model) and is given per use.
_SAFE_ID_CHARS = re.compile(r"^[A-Za-z0-9._:=+/@-]+$")
RETRY_AFTER_S = "30"

log = get_logger("roombridge.web")

Handler = Callable[[Request], Awaitable[Response]]
Dependency = Literal["database", "queue"]


def safe_id(value: object, max_length: int) -> bool:
    """Whether `value` may be used as an id in a query: a non-empty string of at most `max_length` safe characters."""
    return isinstance(value, str) and 0 < len(value) <= max_length and _SAFE_ID_CHARS.fullmatch(value) is not None


def outage_of(exc: BaseException) -> Dependency | None:
    """Which dependency an exception says is unreachable (or failing), or None if it is not an outage."""
    if isinstance(exc, (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError,
                        sqlalchemy.exc.DisconnectionError)):
        return "database"  # OperationalError, InterfaceError, … (connection refused, dropped, pool exhausted)
    if isinstance(exc, (redis.exceptions.RedisError, BrokerError)):
        return "queue"
    if isinstance(exc, (ConnectionError, TimeoutError)):  # a socket error the clients did not wrap
        return "queue"
    return None


def unavailable(dependency: Dependency) -> JSONResponse:
    """503 + Retry-After: the sender (Graph, the booking system, an admin client) retries later."""
    message = {"database": "the database cannot be reached; retry later",
               "queue": "the job queue cannot be reached; retry later"}[dependency]
    return error_response(503, f"{dependency}_unavailable", message, headers={"Retry-After": RETRY_AFTER_S})


def answer_outages(*, unexpected_as_503: bool) -> Callable[[Handler], Handler]:
    """Wrap a handler so that an unreachable database or queue answers 503 + Retry-After instead of 500.

    `unexpected_as_503`: any other exception is logged with its traceback and answered 503 as well (the webhooks:
    SPEC §5 "never 500", and the sender's retry is the right outcome); otherwise it goes on to the app's 500 handler.
    HTTP errors (`ApiError`, 4xx) pass through untouched.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException:
                raise
            except Exception as e:
                dependency = outage_of(e)
                if dependency is not None:
                    # The type only: driver messages may carry host names, user names or parts of the input.
                    log.error("dependency unavailable", dependency=dependency, error=type(e).__name__,
                              path=request.url.path)
                    return unavailable(dependency)
                if not unexpected_as_503:
                    raise
                log.exception("unexpected error answered 503", path=request.url.path)
                return error_response(503, "unavailable", "the request could not be handled now; retry later",
                                      headers={"Retry-After": RETRY_AFTER_S})

        return wrapped

    return decorate


class ApiError(HTTPException):
    """An error answered as JSON `{"error": {"code", "message", ...}}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.extra = extra


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, str(exc.detail), exc.headers, **exc.extra)
    code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# Request ids: a random per-process prefix and a counter (32 hex digits, like a uuid4's). uuid4 reads os.urandom on
# every request, which cost a quarter of the intake's time on a VM (issue 9.1).
_REQUEST_ID_PREFIX = uuid.uuid4().hex[:16]
_REQUEST_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_REQUEST_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


class RequestIdMiddleware:
    """Pure ASGI: bind a request id (the caller's `X-Request-Id` if sane, else a new one) for logs and jobs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_REQUEST_ID.match(given) else _new_request_id()
        token = request_id_var.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
