"""directory_sync's own gauges, read from its tables just before each scrape: what the
alerts of deploy/prometheus/alerts.yml and the feed's panel of the dashboard watch."""

from collections.abc import Awaitable, Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from services.directory_sync.domain import last_scheduled
from services.directory_sync.settings import DirectorySyncSettings
from services.directory_sync.store import FeedFigures
from shared.metrics import NAMESPACE

STATUSES = ("queued", "applied", "unchanged", "held", "rejected", "no_drop", "dry_run")


class FeedGauges:
    def __init__(self, registry: CollectorRegistry, worker: str) -> None:
        self._worker = worker

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, ["worker", *labels], namespace=NAMESPACE, registry=registry)

        self.schools = gauge("feed_schools", "Schools fed from ONDE")
        self.due = gauge(
            "feed_night_due_timestamp_seconds",
            "When the last nightly run was due (the scheduled hour last passed), Unix time",
        )
        self.started = gauge(
            "feed_night_started_timestamp_seconds",
            "When the last nightly run started, Unix time (0: never)",
        )
        self.held = gauge("feed_runs_held", "Runs held for an operator's approval")
        self.oldest_held = gauge(
            "feed_oldest_held_seconds", "How long the oldest held run has waited (0: none)"
        )
        self.runs = gauge("feed_runs", "Runs not done yet, waiting or running", "state")
        self.last_night = gauge(
            "feed_last_night_runs", "The last night's runs by status (queued: not done)", "status"
        )

    def set(self, figures: FeedFigures, due: datetime | None) -> None:
        w = self._worker
        self.schools.labels(w).set(figures.schools)
        # Without schools or a schedule, no night is due: no series, no alert.
        if due is not None and figures.schools:
            self.due.labels(w).set(due.timestamp())
        self.started.labels(w).set(figures.night_started)
        self.held.labels(w).set(figures.held)
        self.oldest_held.labels(w).set(figures.oldest_held_seconds)
        self.runs.labels(w, "waiting").set(figures.waiting)
        self.runs.labels(w, "running").set(figures.running)
        for status in STATUSES:
            self.last_night.labels(w, status).set(figures.last_night.get(status, 0))


def refresher(
    gauges: FeedGauges,
    read: Callable[[], Awaitable[FeedFigures]],
    settings: DirectorySyncSettings,
    clock: Callable[[], datetime],
) -> Callable[[], Awaitable[None]]:
    async def refresh() -> None:
        due = None
        if settings.nightly_enabled:
            due = last_scheduled(clock(), settings.nightly_time, settings.zone)
        gauges.set(await read(), due)

    return refresh
