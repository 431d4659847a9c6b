"""Faults armed on a twin: the next call fails (transient), or the next write happens and then the job dies."""

from __future__ import annotations

from collections.abc import Callable


class JobKilled(Exception):
    """The worker died right after a twin accepted its write: the other side changed, the link was not recorded."""


class Faults:
    def __init__(self) -> None:
        self._next_call: list[Callable[[], Exception]] = []
        self._kill_after_write = 0
        self.kill_kinds: frozenset[str] | None = None
        self.fired = 0

    def fail_next(self, make: Callable[[], Exception], times: int = 1) -> None:
        self._next_call.extend([make] * times)

    def kill_after_next_write(self, kinds: frozenset[str] | None = None) -> None:
        """The next write of one of `kinds` ("create", "update", "delete"; None: any) succeeds, then the job dies."""
        self._kill_after_write += 1
        self.kill_kinds = kinds

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

    def after_write(self, kind: str = "update") -> None:
        if self._kill_after_write and (self.kill_kinds is None or kind in self.kill_kinds):
            self._kill_after_write -= 1
            self.fired += 1
            raise JobKilled("killed after the write, before the link was recorded")
