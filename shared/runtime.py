"""Process lifecycle: start, run until SIGTERM or SIGINT, drain, stop."""

import asyncio
import gc
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from shared.errors import describe
from shared.logs import get_logger
from shared.ops import OpsPortTaken

log = get_logger(__name__)
SettingsT = TypeVar("SettingsT", bound=BaseSettings)
# What a handler or a loop asks the time of: ``utc_now`` in a worker, a settable one in tests.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Waker:
    """Lets a polling loop sleep until poked, or until its poll interval passes."""

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """Forget the pokes so far: what they announced is about to be looked at."""
        self._event.clear()

    async def wait(self, stop: asyncio.Event) -> None:
        await self.sleep(self.poll_seconds, stop)

    async def sleep(self, seconds: float, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._event.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._event.clear()


async def each_turn(
    step: Callable[[], Awaitable[object]], waker: Waker, stop: asyncio.Event, *, failure: str
) -> None:
    """Run ``step`` at every turn of ``waker`` (its interval, or sooner when woken) until
    ``stop``. A failed turn (the database away) is logged as ``failure``; the next tries
    again."""
    while not stop.is_set():
        try:
            await step()
        except Exception as exc:
            log.warning(failure, error=describe(exc))
        await waker.wait(stop)


async def keep_leases(
    renew: Callable[[float], Awaitable[None]], lease_seconds: float, *, failure: str
) -> None:
    """Renew a lease every third of its length until cancelled: the lease stays short, so
    that a crashed worker's claims come back soon, while renewal keeps a slow piece of work
    from being claimed a second time by another replica. A failed renewal is logged as
    ``failure`` and tried again at the next turn."""
    while True:
        await asyncio.sleep(lease_seconds / 3)
        try:
            await renew(lease_seconds)
        except Exception as exc:
            log.warning(failure, error=describe(exc))


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def serve(service: Service, stop: asyncio.Event | None = None) -> None:
    """Start ``service``, wait for a stop signal, then stop it (which drains)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    log.info("started")
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await service.stop()
        log.info("stopped")


# CPython collects its youngest generation every 700 container allocations. A worker
# decoding and building hundreds of models per message kept them alive across many such
# collections, and each full collection walked every module object besides: a large share
# of account_manager's CPU in a first import. Longer-lived objects are frozen out of the
# collections once the modules are loaded, and the thresholds raised (bench/feed.py; the
# figures are in docs/performance.md).
GC_THRESHOLDS = (20_000, 20, 100)


def tune_gc() -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def settings_or_exit(read: Callable[[], SettingsT]) -> SettingsT:
    """The worker's settings, or one line per wrong setting on stderr and exit 2.

    Pydantic's own message quotes each wrong value, which may be a URL holding a password:
    only the setting and what is wrong with it are printed.
    """
    try:
        return read()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            field = "_".join(str(part) for part in error["loc"]).upper()
            print(f"setting ONE_{field}: {error['msg']}", file=sys.stderr)
        sys.exit(2)


def run(build: Callable[[], Service], configure_logs: Callable[[], None]) -> None:
    configure_logs()
    tune_gc()

    async def main() -> None:
        await serve(build())

    try:
        asyncio.run(main())
    except OpsPortTaken as taken:
        # One clear line rather than a traceback: the usual mistake of a first start.
        log.error("ops_port_taken", setting="ONE_OPS_PORT", port=taken.port, error=str(taken))
        sys.exit(2)


Task = Callable[[asyncio.Event], Awaitable[None]]
