"""JSON logs on stdout, carrying the correlation and causation ids of the message at hand.

Secrets never reach a log line: values under secret-looking keys are masked, whatever the
depth, before rendering.
"""

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

SECRET_KEYS = frozenset({"activation_code", "password", "secret", "token", "code", "body", "data"})
MASK = "***"


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if k in SECRET_KEYS else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = MASK if key in SECRET_KEYS else _mask(event_dict[key])
    return event_dict


def configure(service: str, level: str = "INFO") -> None:
    # Libraries (asyncpg, aio-pika) log through the standard library: their lines go through
    # the same processors, so that every line of a worker is JSON, with its service, and
    # masked like ours (they print reconnects and tracebacks during outages).
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                mask_secrets,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # aio-pika and aiormq narrate every reconnect attempt at INFO; keep warnings and up.
    for noisy in ("aio_pika", "aiormq", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


@contextmanager
def message_context(
    *, event_id: str, event_type: str, correlationid: str, causationid: str | None
) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(
        event_id=event_id,
        event_type=event_type,
        correlationid=correlationid,
        causationid=causationid,
    ):
        yield
