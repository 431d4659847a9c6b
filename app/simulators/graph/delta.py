"""`calendarView/delta`: snapshot pages, then changes since a token; opaque tokens that can be expired (410).

A token remembers the window and the tenant change sequence it has seen. Changes to items that are (now) outside
the window come back as `@removed`, as Graph does: clients must not read those as deletions of in-window items.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .directory import Mailbox
from .errors import GraphError, invalid_request
from .events import Calendar
from .state import Tenant

DEFAULT_DELTA_PAGE_SIZE = 10


@dataclass(frozen=True)
class Window:
    mailbox_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class _NextPage:
    window: Window
    pending: tuple[str, ...]  # event ids still to return in this round
    upto_seq: int  # the change sequence this round covers


@dataclass(frozen=True)
class _Baseline:
    window: Window
    since_seq: int


@dataclass
class DeltaPage:
    items: list[dict[str, Any]]
    skip_token: str | None  # set: more pages (`@odata.nextLink`)
    delta_token: str | None  # set: round finished (`@odata.deltaLink`)


class DeltaTokens:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self._states: dict[str, _NextPage | _Baseline] = {}

    def expire_all(self) -> None:
        """Every token issued so far answers 410 Gone / syncStateNotFound from now on."""
        with self.tenant.lock:
            self._states.clear()

    def initial(self, mailbox: Mailbox, window: Window, page_size: int, zone: str | None) -> DeltaPage:
        with self.tenant.lock:
            calendar = self.tenant.calendar(mailbox)
            in_window = sorted(
                (e for e in calendar.events.values() if e.overlaps(window.start, window.end)), key=lambda e: e.start
            )
            return self._page(
                calendar, _NextPage(window, tuple(e.id for e in in_window), self.tenant.seq), page_size, zone
            )

    def follow(self, mailbox: Mailbox, token: str, page_size: int, zone: str | None) -> DeltaPage:
        with self.tenant.lock:
            state = self._states.get(token)
            if state is None:
                raise GraphError(410, "syncStateNotFound", "The sync state generation is not found.")
            if state.window.mailbox_id != mailbox.id:
                raise invalid_request("The token belongs to another mailbox.")
            calendar = self.tenant.calendar(mailbox)
            if isinstance(state, _Baseline):
                state = _NextPage(state.window, self._changed_since(calendar, state.since_seq), self.tenant.seq)
            return self._page(calendar, state, page_size, zone)

    def _changed_since(self, calendar: Calendar, since_seq: int) -> tuple[str, ...]:
        changed = [(e.seq, e.id) for e in calendar.events.values() if e.seq > since_seq]
        changed += [(seq, event_id) for event_id, seq in calendar.removed.items() if seq > since_seq]
        return tuple(event_id for _, event_id in sorted(changed))

    def _page(self, calendar: Calendar, state: _NextPage, page_size: int, zone: str | None) -> DeltaPage:
        now_ids, rest = state.pending[:page_size], state.pending[page_size:]
        items = [self._render(calendar, state.window, event_id, zone) for event_id in now_ids]
        if rest:
            return DeltaPage(items, self._issue(_NextPage(state.window, rest, state.upto_seq)), None)
        return DeltaPage(items, None, self._issue(_Baseline(state.window, state.upto_seq)))

    def _render(self, calendar: Calendar, window: Window, event_id: str, zone: str | None) -> dict[str, Any]:
        event = calendar.events.get(event_id)
        if event is not None and event.overlaps(window.start, window.end):
            return event.json(zone)
        return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}

    def _issue(self, state: _NextPage | _Baseline) -> str:
        token = secrets.token_urlsafe(24)
        self._states[token] = state
        return token
