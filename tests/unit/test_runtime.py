"""shared.runtime.run: a worker's process is tuned and served until SIGTERM."""

import gc
import os
import signal
from collections.abc import Iterator

import pytest

from shared import runtime


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class SeesTheCollector:
    """A service that records the collector's state it runs under, then asks to stop."""

    def __init__(self) -> None:
        self.thresholds: tuple[int, ...] = ()
        self.frozen = 0
        self.stopped = False

    async def start(self) -> None:
        self.thresholds = gc.get_threshold()
        self.frozen = gc.get_freeze_count()
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        self.stopped = True


def test_run_serves_with_the_collector_tuned_until_sigterm(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    service = SeesTheCollector()

    runtime.run(lambda: service, lambda: None)

    assert service.thresholds == runtime.GC_THRESHOLDS
    assert service.frozen > 0  # the modules loaded at start are out of the collections
    assert service.stopped
