"""Faults armed on a twin: the next call fails (transient), or the next write happens and then the job dies."""

from __future__ import annotations

from collections.abc import Callable


class JobKilled(Exception):
    """The worker died right after a twin accepted its write: the other side changed, the link was not recorded."""


class Faults:
    def __init__(self) -> None:
        self._next_call: list[Callable[[], Exception]] = []
        self._kill_after_write = 0
        self.fired = 0

    def fail_next(self, make: Callable[[], Exception], times: int = 1) -> None:
        self._next_call.extend([make] * times)

    def kill_after_next_write(self) -> None:
        self._kill_after_write += 1

    @property
    def armed(self) -> int:
        return len(self._next_call) + self._kill_after_write

    def clear(self) -> None:
        self._next_call.clear()
        self._kill_after_write = 0

    def before_call(self) -> None:
        if self._next_call:
            self.fired += 1
            raise self._next_call.pop(0)()

    def after_write(self) -> None:
        if self._kill_after_write:
            self._kill_after_write -= 1
            self.fired += 1
            raise JobKilled("killed after the write, before the link was recorded")
