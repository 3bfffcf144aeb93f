"""HTML to PDF through one Chromium per worker, driven by Playwright.

The browser is launched once and reused. Each render gets its own browser context (no
cookies, no cache, no JavaScript, no network) that is closed right after. Opening a context
and its page costs most of a render (Chromium starts a renderer process), so one is kept
ready in advance: a render takes the spare and a new spare is prepared in the background.

Renders run at most ``concurrency`` at a time. A browser that died (crash, OOM kill) is
relaunched once and the render retried; a render that still fails raises ``TransientError``
so that the message is retried later.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass

from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright
from playwright.async_api import Error as PlaywrightError

from shared.errors import TransientError
from shared.logs import get_logger

log = get_logger(__name__)

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
_CLOSE_TIMEOUT = 5.0
_RENDER_ERRORS = (PlaywrightError, TimeoutError)


async def _block_network(route: Route) -> None:
    # The HTML is self-contained: anything but an inline data: URI is refused.
    if route.request.url.startswith("data:"):
        await route.continue_()
    else:
        await route.abort("blockedbyclient")


@dataclass(frozen=True)
class _Tab:
    """A fresh context and its page, used for exactly one render."""

    browser: Browser
    context: BrowserContext
    page: Page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.context.close(), _CLOSE_TIMEOUT)


class PdfRenderer:
    """Renders self-contained HTML to PDF (A4, CSS page size and backgrounds honoured)."""

    def __init__(
        self,
        chromium_path: str = "/usr/bin/chromium",
        *,
        concurrency: int = 3,
        render_timeout: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.chromium_path = chromium_path
        self.concurrency = concurrency
        self.render_timeout = render_timeout
        self.launches = 0  # browsers launched so far: 1, plus one per relaunch
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._semaphore = asyncio.Semaphore(concurrency)
        self._launch_lock = asyncio.Lock()
        self._spare: _Tab | None = None
        self._refill: asyncio.Task[None] | None = None

    # Lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch Chromium (and prepare the first page). Idempotent."""
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        await self._browser_or_transient()
        self._prepare_spare()

    async def stop(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(BaseException):
                await self._refill
            self._refill = None
        await self._drop_spare()
        async with self._launch_lock:
            browser, self._browser = self._browser, None
            await self._close_browser(browser)
            if self._playwright is not None:
                playwright, self._playwright = self._playwright, None
                with contextlib.suppress(Exception):
                    await playwright.stop()

    async def __aenter__(self) -> "PdfRenderer":
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def browser(self) -> Browser | None:
        """The browser in use (None before ``start``, after ``stop`` or after a crash)."""
        return self._browser

    # Rendering --------------------------------------------------------------------------

    async def render(self, html: str) -> bytes:
        """The PDF of ``html``. Raises ``TransientError`` when Chromium cannot render it."""
        if self._playwright is None:
            raise RuntimeError("PdfRenderer.start() was not called")
        async with self._semaphore:
            started = time.perf_counter()
            browser = await self._browser_or_transient()
            try:
                pdf = await self._render_once(browser, html)
            except _RENDER_ERRORS as first:
                # Most likely the browser died under us: relaunch it (unless a concurrent
                # render already did) and try once more.
                log.warning(
                    "renderer.retry",
                    error=type(first).__name__,
                    detail=str(first)[:300],
                    browser_connected=browser.is_connected(),
                )
                await self._replace(browser)
                browser = await self._browser_or_transient()
                try:
                    pdf = await self._render_once(browser, html)
                except _RENDER_ERRORS as second:
                    if isinstance(second, TimeoutError):
                        await self._replace(browser)  # a browser that hangs twice goes
                    raise TransientError(
                        "PDF rendering failed after a browser relaunch: "
                        f"{type(second).__name__}: {str(second)[:300]}"
                    ) from second
            log.debug(
                "renderer.rendered",
                ms=round((time.perf_counter() - started) * 1000, 1),
                size=len(pdf),
            )
            return pdf

    async def _render_once(self, browser: Browser, html: str) -> bytes:
        tab = await self._take_tab(browser)
        try:
            async with asyncio.timeout(self.render_timeout):
                await tab.page.set_content(html, wait_until="load")
                return await tab.page.pdf(
                    format="A4", print_background=True, prefer_css_page_size=True
                )
        finally:
            await tab.close()
            self._prepare_spare()  # after this render, not competing with it

    # Pages ------------------------------------------------------------------------------

    async def _open_tab(self, browser: Browser) -> _Tab:
        async with asyncio.timeout(self.render_timeout):
            context = await browser.new_context(java_script_enabled=False, offline=True)
            try:
                await context.route("**/*", _block_network)
                page = await context.new_page()
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(context.close(), _CLOSE_TIMEOUT)
                raise
        return _Tab(browser, context, page)

    async def _take_tab(self, browser: Browser) -> _Tab:
        refill = self._refill
        if self._spare is None and refill is not None and not refill.done():
            # The spare is on its way and started before us: waiting is the quickest.
            await asyncio.wait([refill])
        spare, self._spare = self._spare, None
        if spare is not None:
            if spare.browser is browser and not spare.page.is_closed():
                return spare
            await spare.close()
        return await self._open_tab(browser)

    def _prepare_spare(self) -> None:
        """Open the next render's page in the background, unless one is ready or coming."""
        if self._spare is not None or (self._refill is not None and not self._refill.done()):
            return
        if self._browser is None or self._playwright is None:
            return
        self._refill = asyncio.get_running_loop().create_task(self._fill_spare(self._browser))

    async def _fill_spare(self, browser: Browser) -> None:
        try:
            tab = await self._open_tab(browser)
        except Exception as exc:  # the next render opens its own page and reports
            log.debug("renderer.spare_failed", error=type(exc).__name__)
            return
        if self._spare is None and self._browser is browser:
            self._spare = tab
        else:
            await tab.close()

    async def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare.close()

    # Browser ----------------------------------------------------------------------------

    async def _launch(self) -> Browser:
        if self._playwright is None:  # stopped while a render was under way
            raise TransientError("the PDF renderer is stopped")
        browser = await self._playwright.chromium.launch(
            executable_path=self.chromium_path,
            args=list(CHROMIUM_ARGS),
            timeout=self.render_timeout * 1000,
        )
        self.launches += 1
        log.info("renderer.browser_launched", version=browser.version, launches=self.launches)
        return browser

    async def _browser_or_transient(self) -> Browser:
        try:
            async with self._launch_lock:
                if self._browser is None or not self._browser.is_connected():
                    await self._close_browser(self._browser)
                    self._browser = None
                    self._browser = await self._launch()
                return self._browser
        except (PlaywrightError, TimeoutError, OSError) as exc:
            raise TransientError(f"cannot launch Chromium ({self.chromium_path}): {exc}") from exc

    async def _replace(self, failed: Browser) -> None:
        """Drop ``failed`` if it is still the current browser; the next use relaunches."""
        async with self._launch_lock:
            if self._browser is failed:
                self._browser = None
                await self._close_browser(failed)
        if self._spare is not None and self._spare.browser is failed:
            await self._drop_spare()

    @staticmethod
    async def _close_browser(browser: Browser | None) -> None:
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), _CLOSE_TIMEOUT)


__all__ = ["CHROMIUM_ARGS", "PdfRenderer"]
