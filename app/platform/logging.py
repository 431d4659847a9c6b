"""structlog everywhere: one line per event (JSON in production), stdlib records (uvicorn, dramatiq) included.

Tracebacks are rendered without local variables: locals of a Graph or booking call hold tokens and secrets.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_REDACTED_KEYS = {"client_secret", "booking_api_key", "hook_secret", "access_token", "authorization", "token",
                  "clientState", "client_state", "secret", "password", "api_key"}


def _add_request_id(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    rid = request_id_var.get()
    if rid and "request_id" not in event:
        event["request_id"] = rid
    return event


def _redact(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    for key in list(event):
        if key in _REDACTED_KEYS or key.lower() in _REDACTED_KEYS:
            event[key] = "[redacted]"
    return event


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    if log_format == "json":
        renderer: Processor = structlog.processors.JSONRenderer()
        exc: list[Processor] = [
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
            if _has_rich() else structlog.dev.plain_traceback
        )
        exc = []
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Third-party request logs can carry URLs with tokens; keep them quiet unless debugging.
    for name in ("azure", "msal", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
