"""structlog, configured once per process: JSON off a TTY, context from contextvars, personal data redacted."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

# Who comes to a recovery center is sensitive: these keys never reach a log line, whoever binds them.
REDACTED_KEYS = frozenset(
    {
        "nickname",
        "display_name",
        "name",
        "first_name",
        "last_name",
        "phone",
        "email",
        "address",
        "note",
        "notes",
        "token",
        "authorization",
        "password",
        "kiosk_code",
    }
)
REDACTED = "[redacted]"


def redact_personal_data(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    return _redact(event_dict)


def _redact(mapping: EventDict) -> EventDict:
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() in REDACTED_KEYS:
            mapping[key] = REDACTED
        elif isinstance(value, dict):
            _redact(value)
    return mapping


# Marks the handler configure_logging installs on the root logger, so configuring again replaces it.
_HANDLER_NAME = "rcc-json"


def configure_logging(level: str = "INFO", json: bool | None = None, *, stream: TextIO | None = None) -> None:
    """Our structlog lines and the libraries' standard-library lines (aiohttp, aio-pika, aiormq, asyncpg, alembic,
    SQLAlchemy) come out the same way: one JSON object per line on stderr (stdout is for what a command prints, e.g.
    a new token), with the same context, timestamp and redaction."""
    if json is None:
        json = not sys.stderr.isatty()
    stream = stream if stream is not None else sys.stderr
    renderer: Processor = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    common: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_personal_data,
    ]
    structlog.configure(
        processors=[*common, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # A library's record becomes an event dict like ours: its message is the event, its logger the name.
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *common],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    # Libraries log through the standard library; keep their noise at WARNING.
    root.setLevel(logging.WARNING)


def get_logger(**initial: Any) -> FilteringBoundLogger:
    """A logger bound to ``initial``; its class is the filtering one ``configure_logging`` sets as the wrapper."""
    logger: FilteringBoundLogger = structlog.get_logger(**initial)
    return logger
