"""The one retry policy: after a failure, try again later or give up, and how long to wait.

Every loop that retries asks it: the consume wrapper (a message), the outbox relay (a
batch of events), directory_sync's run loop (a feed run) and credential_dispatch's delivery
loop (an email). Each has its own delays and attempt limit in its settings; the rule is the
same everywhere: a permanent failure is given up at once, a transient one is retried with
growing delays until the attempt limit, and then given up with the count in the reason.
"""

from dataclasses import dataclass

from shared.errors import Failure, classify, describe


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds before the next attempt


@dataclass(frozen=True)
class GiveUp:
    reason: str


Decision = Retry | GiveUp


@dataclass(frozen=True)
class RetryPolicy:
    """The n-th attempt that failed waits ``delays[n-1]`` (the last delay repeats).

    ``max_attempts`` counts every attempt, the first included; ``None`` never gives up on a
    transient failure (the outbox relay: an event that is committed must go out).
    """

    delays: tuple[float, ...]
    max_attempts: int | None

    def __post_init__(self) -> None:
        if not self.delays or any(d < 0 for d in self.delays):
            raise ValueError("a retry policy needs at least one delay, none negative")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def exponential(cls, *, base: float, ceiling: float, max_attempts: int | None) -> "RetryPolicy":
        """base, 2·base, 4·base, … capped at ``ceiling``."""
        delays = [base]
        while delays[-1] * 2 < ceiling:
            delays.append(delays[-1] * 2)
        if delays[-1] < ceiling:
            delays.append(ceiling)
        return cls(tuple(min(d, ceiling) for d in delays), max_attempts)

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th attempt failed (1 for the first)."""
        return self.delays[min(max(attempt, 1), len(self.delays)) - 1]

    def decide(self, failure: Failure, reason: str, attempt: int) -> Decision:
        if failure is Failure.PERMANENT:
            return GiveUp(reason)
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return GiveUp(f"gave up after {attempt} attempts: {reason}")
        return Retry(self.delay(attempt))

    def decide_on(self, error: BaseException, attempt: int) -> Decision:
        """``decide`` for an exception, classified by the shared failure vocabulary."""
        return self.decide(classify(error), describe(error), attempt)
