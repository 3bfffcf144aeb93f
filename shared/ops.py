"""A worker's operations endpoints, served over HTTP by aiohttp.

- ``GET /healthz``: 200 while the event loop turns (the process is alive).
- ``GET /readyz``: 200 when the worker can do its work (broker connected, database
  answering, consumer consuming), else 503 with a JSON body naming each problem.
- ``GET /metrics``: the worker's Prometheus registry, its gauges refreshed first.

The server knows nothing of the worker: it is given what to call.
"""

import errno
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared.logs import get_logger
from shared.metrics import CONTENT_TYPE, Metrics

log = get_logger(__name__)
# Problems found, by component (e.g. {"database": "ConnectionRefusedError: ..."}).
ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


class OpsPortTaken(Exception):
    """The ops port is taken (another worker, or a second replica, on this host)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"{host}:{port} cannot be listened on ({reason}): set ONE_OPS_PORT to a free port"
            " (each worker has its own default, 8001-8004; 0 takes any free port)"
        )
        self.host, self.port = host, port


class OpsServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        readiness: ReadinessCheck,
        metrics: Metrics,
        before_scrape: Callable[[], Awaitable[None]],
    ) -> None:
        self._host = host
        self._port = port
        self._readiness = readiness
        self._metrics = metrics
        self._before_scrape = before_scrape
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound one, once started

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._scrape)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        # A socket of our own, so that port 0 (any free port) tells which one it got.
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            site = web.SockSite(runner, sock)
            await site.start()
        except OSError as exc:
            sock.close()
            await runner.cleanup()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise OpsPortTaken(self._host, self._port, exc.strerror or str(exc)) from exc
            raise
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(sock.getsockname()[1])
        log.info("ops_listening", host=self._host, port=self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _: web.Request) -> web.Response:
        problems = await self._readiness()
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def _scrape(self, _: web.Request) -> web.Response:
        try:
            await self._before_scrape()
        except Exception as exc:  # stale gauges beat no metrics at all
            log.warning("metrics_refresh_failed", error=f"{type(exc).__name__}: {exc}")
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})
