"""One logical clock for both twins, so that a run depends only on what the test did, never on timing.

It starts at the real time the world is made and moves forward by one microsecond each time it is read: strictly
increasing (Graph's `lastModifiedDateTime` and the booking system's `updated_at` never tie by accident, and
"newest wins" (SPEC §7 conflicts) is decided by the order of the changes), and always behind the real clock the
bridge itself reads (reading it costs more than a microsecond), so comparisons between the two are one-sided too.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

TICK = timedelta(microseconds=1)


class TwinClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            self._now += TICK
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta
