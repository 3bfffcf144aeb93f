"""directory_sync's gauges on /metrics, which the alerts of deploy/prometheus/alerts.yml
read: the night due and the night started, held runs and their age, the night's progress."""

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from aio_pika.abc import AbstractChannel
from prometheus_client.parser import text_string_to_metric_families

from services.directory_sync.bootstrap import build
from services.directory_sync.settings import DirectorySyncSettings
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy
from tests.support.feed import Clock, Drop, Feed, small_school
from tests.support.orders import uai
from tools.waits import eventually

PARIS = ZoneInfo("Europe/Paris")


async def scrape(worker: Worker) -> dict[str, float]:
    """Every sample of directory_sync's /metrics, by name and labels (worker left out)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{worker.ops_port}/metrics") as response,
    ):
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "worker")
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def test_the_feed_tells_its_night_its_held_runs_and_its_progress(
    stack: Stack, channel: AbstractChannel, tmp_path: Path
) -> None:
    clock = Clock(datetime(2026, 1, 14, 15, 0, tzinfo=PARIS).astimezone(UTC))
    settings = stack.settings(
        DirectorySyncSettings,
        feed_dir=tmp_path,
        nightly_enabled=True,
        nightly_at="02:00",
        nightly_poll_seconds=0.1,
        run_poll_seconds=0.2,
    )
    worker = build(settings, clock=clock.replica())
    await worker.start()
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        feed = Feed(channel, stack.exchange, spy, tmp_path)

        before = await scrape(worker)
        assert before["one_feed_schools{}"] == 0
        assert "one_feed_night_due_timestamp_seconds{}" not in before  # no school, no night
        assert before["one_ready{}"] == 1

        school = uai("074", 41)
        drop = small_school(12)
        drop.write(tmp_path, school)
        first = await feed.reported((await feed.open_school(school))["order_id"])
        assert first["status"] == "applied"
        after_first = await scrape(worker)
        due = datetime(2026, 1, 14, 2, 0, tzinfo=PARIS).timestamp()
        assert after_first["one_feed_schools{}"] == 1
        assert after_first["one_feed_night_due_timestamp_seconds{}"] == due
        assert after_first["one_feed_night_started_timestamp_seconds{}"] == 0  # never

        # Half the school gone tonight: the nightly run is held for an operator.
        Drop(drop.kids[:6], drop.adults[:6], drop.staff).write(tmp_path, school)
        clock.now = datetime(2026, 1, 15, 2, 0, 30, tzinfo=PARIS).astimezone(UTC)

        async def held() -> dict[str, float] | None:
            found = await scrape(worker)
            return found if found["one_feed_runs_held{}"] == 1 else None

        night = await eventually(held, timeout=30, what="the nightly run held")
        assert night["one_feed_night_due_timestamp_seconds{}"] == due + 24 * 3600
        assert night["one_feed_night_started_timestamp_seconds{}"] > 0
        assert night["one_feed_last_night_runs{status=held}"] == 1
        assert night["one_feed_last_night_runs{status=queued}"] == 0
        assert night["one_feed_runs{state=waiting}"] == 0
        assert 0 <= night["one_feed_oldest_held_seconds{}"] < 60
    finally:
        await worker.stop()
