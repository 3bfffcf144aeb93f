from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from services.directory_sync.domain import parse_hh_mm
from services.directory_sync.onde import Limits
from shared import topics
from shared.retry import RetryPolicy
from shared.settings import CommonSettings, own_ops_port


class DirectorySyncSettings(CommonSettings):
    ops_port: int = own_ops_port(topics.DIRECTORY_SYNC)
    # Where the académies drop each school's nightly ONDE export: <feed_dir>/<UAI>/.
    feed_dir: Path = Path("var/feed")
    # What a drop may hold: a file larger, or of more lines, is refused before being read
    # whole (a school's files are a few hundred kilobytes and a few thousand lines).
    feed_max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    feed_max_rows: int = Field(default=100_000, ge=1)
    # The nightly run: one per académie per night at this local time, whatever the number
    # of replicas. A replica that was down then catches up within the window.
    nightly_enabled: bool = True
    nightly_at: str = "02:00"
    timezone: str = "Europe/Paris"
    nightly_window_hours: float = Field(default=12.0, gt=0, le=24)
    nightly_poll_seconds: float = Field(default=30.0, gt=0)
    # Safety hold: a run that would make more than this share of the school leave waits
    # for an operator.
    hold_leave_share: float = Field(default=0.10, ge=0, le=1)
    # Persons per directory.synced message.
    chunk_size: int = Field(default=500, ge=1, le=5000)
    # Runs are claimed under a lease (renewed while running): how soon a crashed worker's
    # runs are taken up again.
    run_lease_seconds: float = Field(default=60.0, gt=0)
    # Runs at once per replica: an unchanged run mostly waits on the database, a changed one
    # on a worker process; more lanes than processes keep both busy (docs/performance.md).
    run_concurrency: int = Field(default=6, ge=1, le=32)
    # Worker processes that parse and compare the drops (0: threads of the worker). A
    # school's parse and compare is pure Python: processes let a replica use more than one
    # core.
    run_processes: int = Field(default=2, ge=0, le=16)
    run_poll_seconds: float = Field(default=2.0, gt=0)
    run_max_attempts: int = Field(default=5, ge=1)
    run_retry_base_seconds: float = Field(default=5.0, gt=0)
    run_retry_max_seconds: float = Field(default=300.0, gt=0)

    @property
    def run_retry(self) -> RetryPolicy:
        """A run that failed (a database away, a parsing process lost) is tried again;
        a run that failed for good, or too often, is reported as rejected."""
        return RetryPolicy.exponential(
            base=self.run_retry_base_seconds,
            ceiling=self.run_retry_max_seconds,
            max_attempts=self.run_max_attempts,
        )

    @field_validator("nightly_at")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        parse_hh_mm(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def nightly_time(self) -> time:
        return parse_hh_mm(self.nightly_at)

    @property
    def feed_limits(self) -> Limits:
        return Limits(max_file_bytes=self.feed_max_file_bytes, max_rows=self.feed_max_rows)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
