"""Graph failures as the sync code needs to tell them apart."""

from __future__ import annotations


class GraphError(Exception):
    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class GraphNotFound(GraphError):
    pass


class GraphConflict(GraphError):
    pass


class GraphGone(GraphError):
    """A delta token Graph no longer honours (`410 Gone`, `syncStateNotFound`): restart with a full sync."""


class GraphThrottled(GraphError):
    """429/503/504, or the service could not be reached: the job queue retries after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class GraphAuthError(GraphError):
    """The app registration's credentials were refused (wrong secret, no consent)."""
