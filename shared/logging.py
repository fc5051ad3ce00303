"""structlog, configured once per process: JSON off a TTY, context from contextvars, personal data redacted."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

# Who comes to a recovery center is sensitive: these keys never reach a log line, whoever binds them.
REDACTED_KEYS = frozenset(
    {
        "nickname",
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


def redact_personal_data(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return _redact(event_dict)


def _redact(mapping: dict[str, Any]) -> dict[str, Any]:
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() in REDACTED_KEYS:
            mapping[key] = REDACTED
        elif isinstance(value, dict):
            _redact(value)
    return mapping


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library; keep their noise at WARNING.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def get_logger(**initial: Any) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(**initial)
