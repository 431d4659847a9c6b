"""Helpers shared by the booking tests (a unique module name: other test folders have their own conftest)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.contract import LoanCreate, LoanItemRef, Place, Requester
from simulators.server import ServerThread

API_KEY = "sim-api-key-0123456789abcdef"
HOOK_SECRET = "hook-secret-for-tests"
T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class HookReceiver:
    """A tiny bridge stand-in: records every POST; answers from `statuses` (then 202)."""

    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: ServerThread | None = None

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._cond:
            self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body,
                                          time.monotonic()))
            status = self.statuses.pop(0) if self.statuses else 202
            self._cond.notify_all()
        return Response(status_code=status)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self._server.base_url}/hooks/booking/1"

    def start(self) -> "HookReceiver":
        app = Starlette(routes=[Route("/hooks/booking/1", self._hook, methods=["POST"])])
        self._server = ServerThread(app).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} hooks, got {len(self.received)}"
                self._cond.wait(left)
            return list(self.received)


def new_loan(*places: Place, start: datetime = T0, hours: float = 1, ref: str = "ical-1") -> LoanCreate:
    return LoanCreate(
        requester=Requester(email="alice@contoso.com", name="Alice"),
        start=start,
        end=start + timedelta(hours=hours),
        store_id="store-1",
        items=[LoanItemRef(id=p.id) for p in places],
        origin={"system": "outlook", "ref": ref},
    )
