"""HTML to PDF through one Chromium per worker, driven by Playwright.

The browser is launched once and reused, and so are its pages: opening a context and its
page costs more than a whole render (Chromium starts a renderer process), so at most
``concurrency`` pages (each in its own context: no JavaScript, no network) are kept and
loaded with one document after another.

Chromium's memory stays bounded over a long run in two ways. A renderer process keeps
the garbage of the documents it laid out until it is short of memory, and grows from one
small document to the next (about +50 MiB over 25 print jobs of a class): after a small
render, while the page waits for the next one, its garbage is collected and its caches
purged (CDP ``HeapProfiler.collectGarbage`` and a critical memory-pressure signal, some
30 ms, off the caller's path). A large document leaves a high-water mark that no purge
gives back (some 350 MiB after a 100-page part of a print job): a page is closed, and its
renderer process with it, once it has laid out ``recycle_after_chars`` characters of HTML
or served ``recycle_after`` renders. Opening a page costs 0.3 to 0.6 s (which is why it is
not done more often), so the worn-out page is closed and its replacement opened in the
background, while the other pages work.

Renders run at most ``concurrency`` at a time. A browser that died (crash, OOM kill) is
relaunched once and the render retried; a render that still fails raises ``TransientError``
so that the message is retried later.
"""

import asyncio
import contextlib
import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Route,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject

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
_TIDY_TIMEOUT = 5.0
_TIDY_BELOW_CHARS = 250_000  # a larger document counts towards recycling instead
_RENDER_ERRORS = (PlaywrightError, TimeoutError)


async def _block_network(route: Route) -> None:
    # The HTML is self-contained: anything but an inline data: URI is refused.
    if route.request.url.startswith("data:"):
        await route.continue_()
    else:
        await route.abort("blockedbyclient")


@dataclass
class _Tab:
    """A context and its page, reused for render after render."""

    browser: Browser
    context: BrowserContext
    page: Page
    uses: int = 0
    chars: int = 0  # HTML laid out so far
    cdp: CDPSession | None = None
    tidying: "asyncio.Task[bool] | None" = None  # the purge after the last render

    async def tidy(self) -> bool:
        """Collect the renderer's garbage and purge its caches; False if that failed."""
        try:
            async with asyncio.timeout(_TIDY_TIMEOUT):
                if self.cdp is None:
                    self.cdp = await self.context.new_cdp_session(self.page)
                await self.cdp.send("HeapProfiler.collectGarbage")
                await self.cdp.send("Memory.simulatePressureNotification", {"level": "critical"})
            return True
        except (PlaywrightError, TimeoutError):
            return False

    async def ready(self) -> bool:
        """Whether the page can take the next render (once its purge is over)."""
        if self.tidying is not None:
            tidying, self.tidying = self.tidying, None
            if not await tidying:
                return False
        return not self.page.is_closed()

    async def close(self) -> None:
        if self.tidying is not None:
            tidying, self.tidying = self.tidying, None
            tidying.cancel()
            await asyncio.gather(tidying, return_exceptions=True)
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
        recycle_after: int = 200,
        recycle_after_chars: int = 4_000_000,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.chromium_path = chromium_path
        self.concurrency = concurrency
        self.render_timeout = render_timeout
        self.recycle_after = recycle_after
        self.recycle_after_chars = recycle_after_chars
        self.launches = 0  # browsers launched so far: 1, plus one per relaunch
        self.pages_opened = 0
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._semaphore = asyncio.Semaphore(concurrency)
        self._launch_lock = asyncio.Lock()
        self._idle: list[_Tab] = []  # pages ready for the next render
        self._opening: list[asyncio.Task[_Tab]] = []  # replacements of worn-out pages
        self._closing: set[asyncio.Task[None]] = set()

    # Lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch Chromium (and prepare the first page). Idempotent."""
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        await self._browser_or_transient()

    async def stop(self) -> None:
        await self._drop_idle()
        opening, self._opening = self._opening, []
        for task in opening:
            task.cancel()
        for tab in await asyncio.gather(*opening, return_exceptions=True):
            if isinstance(tab, _Tab):
                await tab.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
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
        reusable = False
        try:
            async with asyncio.timeout(self.render_timeout):
                await tab.page.set_content(html, wait_until="load")
                pdf = await tab.page.pdf(
                    format="A4", print_background=True, prefer_css_page_size=True
                )
            reusable = True
            return pdf
        finally:
            tab.uses += 1
            tab.chars += len(html)
            if (
                reusable
                and tab.uses < self.recycle_after
                and tab.chars < self.recycle_after_chars
                and tab.browser is self._browser
            ):
                if len(html) < _TIDY_BELOW_CHARS:
                    tab.tidying = asyncio.create_task(tab.tidy())
                self._idle.append(tab)
            elif reusable and tab.browser is self._browser:
                # Worn out: closed, and its replacement opened, while work goes on.
                closing = asyncio.create_task(tab.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
                self._opening.append(asyncio.create_task(self._open_tab(tab.browser)))
            else:
                await tab.close()

    async def render_one_page_each(self, html: str, documents: int) -> list[bytes] | None:
        """Render ``documents`` documents laid one per page in one go and split the PDF
        into one file each; None when the page count shows one of them overflowed.

        A page.pdf call costs about as much as a page (Chromium's fixed cost), so one
        call for a batch of sheets or invoices costs a fraction of one call each.
        """
        pdf = await self.render(html)
        return await asyncio.to_thread(split_pages, pdf, documents)

    async def render_parts(self, parts: Iterable[str]) -> bytes:
        """One PDF from HTML documents rendered in parallel and merged in order.

        Meant for long print jobs (``Documents.print_parts``): one page.pdf call per part
        keeps each render short (well within ``render_timeout``; Chromium's cost per page
        grows with the document's length) and lets ``concurrency`` pages work at once.
        ``parts`` is consumed lazily in a worker thread, so the next part's HTML (its QR
        codes) is built while Chromium renders the previous ones, and at most
        ``concurrency + 1`` parts are held at a time. Raises ``TransientError`` as
        ``render`` does, after cancelling the renders still running.
        """
        iterator = iter(parts)
        renders: list[asyncio.Task[bytes]] = []
        in_order: asyncio.Queue[asyncio.Task[bytes] | None] = asyncio.Queue()
        merged = asyncio.create_task(_merge_in_order(in_order))
        try:
            while True:
                if merged.done():
                    merged.result()  # raises the error of a render that failed
                running = [task for task in renders if not task.done()]
                if len(running) > self.concurrency:
                    await asyncio.wait([*running, merged], return_when=asyncio.FIRST_COMPLETED)
                    continue
                html = await asyncio.to_thread(next, iterator, None)
                if html is None:
                    break
                renders.append(asyncio.create_task(self.render(html)))
                in_order.put_nowait(renders[-1])
            if not renders:
                raise ValueError("render_parts needs at least one document")
            in_order.put_nowait(None)
            return await merged
        except BaseException:
            for task in [merged, *renders]:
                task.cancel()
            await asyncio.gather(merged, *renders, return_exceptions=True)
            raise

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
        self.pages_opened += 1
        return _Tab(browser, context, page)

    async def _take_tab(self, browser: Browser) -> _Tab:
        while self._idle:
            tab = self._idle.pop()
            try:
                usable = tab.browser is browser and await tab.ready()
            except BaseException:  # cancelled while its purge ran: nobody else has it
                await tab.close()
                raise
            if usable:
                return tab
            await tab.close()
        while self._opening:
            opening = self._opening.pop(0)
            try:
                tab = await asyncio.shield(opening)
            except asyncio.CancelledError:
                if not opening.done():
                    self._opening.insert(0, opening)  # still opening: for the next render
                raise
            except Exception as exc:  # opening failed: try again below, and report then
                log.info("renderer.spare_page_failed", error=type(exc).__name__)
                continue
            if tab.browser is browser and not tab.page.is_closed():
                return tab
            await tab.close()
        return await self._open_tab(browser)

    async def _drop_idle(self, browser: Browser | None = None) -> None:
        """Close the idle pages (of ``browser`` only, when given)."""
        keep = [t for t in self._idle if browser is not None and t.browser is not browser]
        dropped = [t for t in self._idle if t not in keep]
        self._idle = keep
        for tab in dropped:
            await tab.close()

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
        await self._drop_idle(failed)

    @staticmethod
    async def _close_browser(browser: Browser | None) -> None:
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), _CLOSE_TIMEOUT)


def merge_pdfs(parts: Sequence[bytes]) -> bytes:
    writer = PdfWriter()
    for part in parts:
        writer.append(PdfReader(io.BytesIO(part)))
    return _written(writer)


def _append(writer: PdfWriter, pdf: bytes) -> None:
    writer.append(PdfReader(io.BytesIO(pdf)))


def _written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def _merge_in_order(renders: "asyncio.Queue[asyncio.Task[bytes] | None]") -> bytes:
    """The PDFs of ``renders`` (queued in document order, then None) as one, each appended
    as soon as it and those before it are rendered: only the final write is left once the
    last render ends. A single PDF is given back as it is."""
    first: bytes | None = None
    writer: PdfWriter | None = None
    while (render := await renders.get()) is not None:
        pdf = await render
        if first is None:
            first = pdf
            continue
        if writer is None:
            writer = PdfWriter()
            await asyncio.to_thread(_append, writer, first)
        await asyncio.to_thread(_append, writer, pdf)
    if writer is None:
        assert first is not None
        return first
    return await asyncio.to_thread(_written, writer)


def split_pages(pdf: bytes, pages: int, *, keep: tuple[str, ...] = ()) -> list[bytes] | None:
    """One PDF a page of ``pdf``, None when it has not ``pages`` pages. ``keep``: entries
    of the document's catalog every part carries too (a PDF/A's ``/OutputIntents``)."""
    reader = PdfReader(io.BytesIO(pdf))
    if len(reader.pages) != pages:
        return None
    kept = {key: reader.root_object[key] for key in keep if key in reader.root_object}
    parts = []
    for page in reader.pages:
        writer = PdfWriter()
        writer.add_page(page)
        for key, value in kept.items():
            writer.root_object[NameObject(key)] = value.clone(writer)
        out = io.BytesIO()
        writer.write(out)
        parts.append(out.getvalue())
    return parts


__all__ = ["CHROMIUM_ARGS", "PdfRenderer"]
