"""The simulator's clock: real UTC time plus an offset that tests can move forward (subscription expiry)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SimClock:
    """One clock for everything time-based in the simulator, so that `advance()` moves all of it together."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta
