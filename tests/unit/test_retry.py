"""The one retry policy, and the loops that ask it: a transient failure is retried with
growing delays up to the attempt limit, a permanent one is given up at once."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.credential_dispatch.delivery import DeliveryLoop
from services.credential_dispatch.model import Delivery
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.directory_sync import domain
from services.directory_sync.ports import QueuedRun
from services.directory_sync.runs import RunLoop
from services.directory_sync.settings import DirectorySyncSettings
from shared.errors import Failure, PermanentError, TransientError
from shared.retry import GiveUp, Retry, RetryPolicy
from shared.runtime import Waker
from shared.settings import CommonSettings


def test_exponential_delays_double_up_to_the_ceiling_and_stay_there() -> None:
    policy = RetryPolicy.exponential(base=2.0, ceiling=600.0, max_attempts=12)
    assert [policy.delay(n) for n in range(1, 13)] == [
        2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 600.0, 600.0, 600.0
    ]  # fmt: skip


def test_a_transient_failure_is_retried_until_the_attempt_limit() -> None:
    policy = RetryPolicy((1.0, 5.0, 30.0), max_attempts=4)
    decisions = [policy.decide(Failure.TRANSIENT, "SMTP down", n) for n in range(1, 5)]
    assert decisions[:3] == [Retry(1.0), Retry(5.0), Retry(30.0)]
    assert decisions[3] == GiveUp("gave up after 4 attempts: SMTP down")


def test_a_permanent_failure_is_given_up_at_the_first_attempt() -> None:
    policy = RetryPolicy((1.0,), max_attempts=100)
    assert policy.decide_on(PermanentError("no email address"), 1) == GiveUp(
        "PermanentError: no email address"
    )


def test_an_unknown_error_counts_as_transient_and_a_policy_without_limit_never_gives_up() -> None:
    policy = RetryPolicy.exponential(base=0.2, ceiling=5.0, max_attempts=None)
    assert policy.decide_on(RuntimeError("bug"), 10_000) == Retry(5.0)


def test_a_policy_without_delays_or_with_no_attempt_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy((), max_attempts=3)
    with pytest.raises(ValueError):
        RetryPolicy((1.0,), max_attempts=0)


def test_each_worker_s_settings_build_its_policy() -> None:
    common = CommonSettings(retry_delays=[1.0, 5.0], max_attempts=3)
    assert common.message_retry == RetryPolicy((1.0, 5.0), 3)
    assert common.outbox_retry.max_attempts is None
    dispatch = CredentialDispatchSettings(
        delivery_retry_base_seconds=2.0, delivery_retry_max_seconds=8.0, delivery_max_attempts=5
    )
    assert dispatch.delivery_retry == RetryPolicy((2.0, 4.0, 8.0), 5)
    sync = DirectorySyncSettings(run_retry_base_seconds=5.0, run_max_attempts=2)
    assert sync.run_retry.max_attempts == 2 and sync.run_retry.delay(1) == 5.0


@dataclass
class RecordingRunQueries:
    """What the run loop asked of its store; ``finish`` fails the first time with ``fault``."""

    fault: Exception
    rescheduled: list[float] = field(default_factory=list)
    finished: list[domain.RunResult] = field(default_factory=list)

    async def finish(self, run: QueuedRun, result: domain.RunResult, events: Any) -> bool:
        if not self.finished and self.fault is not None:
            fault, self.fault = self.fault, None  # type: ignore[assignment]
            raise fault
        self.finished.append(result)
        return True

    async def reschedule(self, run_id: UUID, *, delay_seconds: float, error: str | None) -> None:
        self.rescheduled.append(delay_seconds)


def run_loop(queries: RecordingRunQueries, tmp_path: Path, **settings: Any) -> RunLoop:
    return RunLoop(
        queries,  # type: ignore[arg-type]
        settings=DirectorySyncSettings(feed_dir=tmp_path, **settings),
        on_outcome=Waker(1.0),
    )


def queued(attempts: int) -> QueuedRun:
    return QueuedRun(uuid4(), uuid4(), "0740001Z", "request", False, "corr", attempts=attempts)


HEAD = domain.NO_SNAPSHOT


async def test_a_run_that_failed_transiently_is_tried_again_later(tmp_path: Path) -> None:
    queries = RecordingRunQueries(TransientError("database away"))
    await run_loop(queries, tmp_path, run_retry_base_seconds=5.0).execute(queued(2), HEAD)
    assert queries.rescheduled == [10.0]
    assert queries.finished == []


async def test_a_run_that_failed_for_good_is_rejected_at_once(tmp_path: Path) -> None:
    queries = RecordingRunQueries(PermanentError("the snapshot is corrupt"))
    await run_loop(queries, tmp_path, run_max_attempts=5).execute(queued(1), HEAD)
    assert queries.rescheduled == []
    [rejected] = queries.finished
    assert rejected.status == "rejected"
    assert "the snapshot is corrupt" in rejected.errors[0].message


async def test_a_run_that_failed_at_its_last_attempt_is_rejected_with_the_count(
    tmp_path: Path,
) -> None:
    queries = RecordingRunQueries(TransientError("database away"))
    await run_loop(queries, tmp_path, run_max_attempts=3).execute(queued(3), HEAD)
    [rejected] = queries.finished
    assert "gave up after 3 attempts" in rejected.errors[0].message


@dataclass
class RecordingDeliveryQueries:
    rescheduled: list[float] = field(default_factory=list)
    settled: list[tuple[bool, str | None]] = field(default_factory=list)

    async def reschedule(
        self, delivery_id: UUID, *, delay_seconds: float, error: str | None
    ) -> None:
        self.rescheduled.append(delay_seconds)

    async def settle(
        self, delivery: Delivery, *, sent: bool, error: str | None, report: Any
    ) -> None:
        self.settled.append((sent, error))


def delivery_loop(queries: RecordingDeliveryQueries) -> DeliveryLoop:
    settings = CredentialDispatchSettings(
        delivery_retry_base_seconds=2.0, delivery_retry_max_seconds=600.0, delivery_max_attempts=4
    )
    return DeliveryLoop(
        queries,  # type: ignore[arg-type]
        documents=None,  # type: ignore[arg-type]  # not reached: the document is a failure
        renderer=None,  # type: ignore[arg-type]
        mailer=None,  # type: ignore[arg-type]
        settings=settings,
        on_outcome=Waker(1.0),
    )


def pending(attempts: int) -> Delivery:
    return Delivery(uuid4(), uuid4(), "first_access", uuid4(), None, "a@example.org", attempts)


async def test_deliveries_are_retried_then_given_up_by_the_same_policy() -> None:
    queries = RecordingDeliveryQueries()
    loop = delivery_loop(queries)
    await loop.deliver(pending(3), TransientError("SMTP 451"))
    await loop.deliver(pending(4), TransientError("SMTP 451"))
    await loop.deliver(pending(1), PermanentError("no email address"))
    assert queries.rescheduled == [8.0]
    assert queries.settled == [
        (False, "gave up after 4 attempts: TransientError: SMTP 451"),
        (False, "PermanentError: no email address"),
    ]
