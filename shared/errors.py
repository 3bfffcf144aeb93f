"""The one failure vocabulary every worker speaks.

A handler raises ``TransientError`` for what may work later (a database or SMTP server
down, a crashed renderer) and ``PermanentError`` for what never will. The consume wrapper
turns the first into a delayed retry and the second into a dead-letter with its reason.
Exceptions of neither kind are classified by ``classify``.
"""

import asyncio
from enum import Enum
from typing import Literal, get_args

import asyncpg


class Failure(Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


# What became of one message: the consume wrapper's result, its metrics' label, its counts.
OutcomeKind = Literal["applied", "duplicate", "retry", "dead"]
OUTCOME_KINDS: tuple[OutcomeKind, ...] = get_args(OutcomeKind)


class PipelineError(Exception):
    failure: Failure

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(PipelineError):
    failure = Failure.TRANSIENT


class PermanentError(PipelineError):
    failure = Failure.PERMANENT


_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
)


def classify(exc: BaseException) -> Failure:
    """Transient when retrying may help; permanent otherwise.

    Unknown errors count as transient: they are retried up to the attempt limit and then
    dead-lettered, so a bug never loses a message and never loops forever.
    """
    if isinstance(exc, PipelineError):
        return exc.failure
    if isinstance(exc, _TRANSIENT_TYPES):
        return Failure.TRANSIENT
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        # Two replicas raced on the same row: the retry finds it and acts idempotently.
        return Failure.TRANSIENT
    if isinstance(
        exc, asyncpg.exceptions.DataError | asyncpg.exceptions.IntegrityConstraintViolationError
    ):
        return Failure.PERMANENT
    return Failure.TRANSIENT


def describe(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, PipelineError) else str(exc)
    return f"{type(exc).__name__}: {reason}"[:1000]
