"""`calendarView/delta`: snapshot pages, then changes since a token; opaque tokens that can be expired (410).

A token remembers the window and the tenant change sequence it has seen. Changes to items that are (now) outside
the window come back as `@removed`, as Graph does: clients must not read those as deletions of in-window items.

Series: delta returns the occurrences and exceptions in the window, never the master. A token also remembers which
occurrence ids it reported as present; one that is no longer there (cancelled, declined, series moved or deleted)
comes back as `@removed`, and one whose series or exception changed comes back whole.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulators.graph.directory import Mailbox
from simulators.graph.errors import GraphError, invalid_request
from simulators.graph.events import Calendar
from simulators.graph.state import Tenant

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
    occurrences: frozenset[str] = frozenset()  # occurrence/exception ids in the window when this round started


@dataclass(frozen=True)
class _Baseline:
    window: Window
    since_seq: int
    occurrences: frozenset[str] = frozenset()


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
            in_window = calendar.view(window.start, window.end)
            occurrences = frozenset(e.id for e in in_window if e.series_master_id is not None)
            state = _NextPage(window, tuple(e.id for e in in_window), self.tenant.seq, occurrences)
            return self._page(calendar, state, page_size, zone)

    def follow(self, mailbox: Mailbox, token: str, page_size: int, zone: str | None) -> DeltaPage:
        with self.tenant.lock:
            state = self._states.get(token)
            if state is None:
                raise GraphError(410, "syncStateNotFound", "The sync state generation is not found.")
            if state.window.mailbox_id != mailbox.id:
                raise invalid_request("The token belongs to another mailbox.")
            calendar = self.tenant.calendar(mailbox)
            if isinstance(state, _Baseline):
                state = self._changed_since(calendar, state)
            return self._page(calendar, state, page_size, zone)

    def _changed_since(self, calendar: Calendar, baseline: _Baseline) -> _NextPage:
        since_seq, window = baseline.since_seq, baseline.window
        changed = [(e.seq, e.id) for e in calendar.events.values() if not e.is_master and e.seq > since_seq]
        changed += [(seq, event_id) for event_id, seq in calendar.removed.items() if seq > since_seq]
        current = {e.id: e for e in calendar.view(window.start, window.end) if e.series_master_id is not None}
        changed += [
            (e.seq, e.id) for e in current.values() if e.seq > since_seq or e.id not in baseline.occurrences
        ]
        changed += [(self.tenant.seq, event_id) for event_id in sorted(baseline.occurrences - current.keys())]
        pending = dict.fromkeys(event_id for _, event_id in sorted(changed))  # ordered, without repeats
        return _NextPage(window, tuple(pending), self.tenant.seq, frozenset(current))

    def _page(self, calendar: Calendar, state: _NextPage, page_size: int, zone: str | None) -> DeltaPage:
        now_ids, rest = state.pending[:page_size], state.pending[page_size:]
        items = [self._render(calendar, state.window, event_id, zone) for event_id in now_ids]
        if rest:
            return DeltaPage(
                items, self._issue(_NextPage(state.window, rest, state.upto_seq, state.occurrences)), None
            )
        return DeltaPage(items, None, self._issue(_Baseline(state.window, state.upto_seq, state.occurrences)))

    def _render(self, calendar: Calendar, window: Window, event_id: str, zone: str | None) -> dict[str, Any]:
        event = calendar.find(event_id)
        if event is not None and not event.is_master and event.overlaps(window.start, window.end):
            return event.json(zone)
        return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}

    def _issue(self, state: _NextPage | _Baseline) -> str:
        token = secrets.token_urlsafe(24)
        self._states[token] = state
        return token
