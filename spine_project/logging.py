"""Logging setup: structlog events rendered as JSON (or console) on stdout, configured once.

Standard-library loggers (Django, Dramatiq) go through the same renderer, so every line on
stdout is one JSON object with time (UTC), level, event and whatever context is bound.
"""

import logging
import logging.config
import sys

import structlog
from structlog.typing import Processor

_SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "authorization", "credential")
MASK = "***"


def is_secret_key(key: str) -> bool:
    """True when a mapping key looks like it holds a secret (masked in logs)."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def mask_secrets(value):
    """Return a copy of a JSON-like value with secret-looking keys masked, at any depth."""
    if isinstance(value, dict):
        return {k: MASK if is_secret_key(str(k)) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


def _mask_processor(_logger, _method, event_dict):
    return mask_secrets(event_dict)


def configure_logging(*, fmt: str = "json", level: str = "INFO", stream: str = "stdout") -> None:
    """Configure structlog and stdlib logging to render the same way on stdout."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        _mask_processor,
    ]
    renderer = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            # Drop an event below the level before any processor runs (stamping, masking and
            # rendering one that is thrown away cost a hot path such as dispatch ~10 %).
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                    "foreign_pre_chain": shared,
                }
            },
            "handlers": {
                "stdout": {
                    "class": "logging.StreamHandler",
                    "stream": sys.stderr if stream == "stderr" else sys.stdout,
                    "formatter": "structlog",
                }
            },
            "root": {"handlers": ["stdout"], "level": level},
            "loggers": {
                "django.db.backends": {"level": "WARNING"},
                "pika": {"level": "WARNING"},
            },
        }
    )
