"""Reading the PDFs the pipeline produces: pages, text, QR codes, and the Chromium behind them.

pypdfium2 reads and rasterises; zxing-cpp decodes QR codes from the raster, as a phone
camera would from the printed sheet. No Pillow or numpy needed.
"""

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pypdfium2 as pdfium
import zxingcpp

if TYPE_CHECKING:
    from tests.conftest import Stack


async def stored_document(stack: "Stack", document_id: str) -> bytes:
    """A document credential_dispatch printed, as it stored it."""
    conn = await stack.admin()
    try:
        content = await conn.fetchval(
            "SELECT content FROM credential_dispatch.documents WHERE document_id = $1",
            uuid.UUID(document_id),
        )
    finally:
        await conn.close()
    assert content is not None, f"no document {document_id}"
    return bytes(content)


def page_count(pdf: bytes) -> int:
    document = pdfium.PdfDocument(pdf)
    try:
        return len(document)
    finally:
        document.close()


def pdf_text(pdf: bytes) -> list[str]:
    """The text of each page, lines separated by ``\\n``.

    pdfium reports a hyphen where a line was broken after it as U+FFFE; it is given back as
    the ``-`` it was.
    """
    document = pdfium.PdfDocument(pdf)
    try:
        pages = []
        for page in document:
            text = page.get_textpage().get_text_range()
            pages.append(text.replace("\r\n", "\n").replace("\ufffe", "-"))
        return pages
    finally:
        document.close()


def squash(text: str) -> str:
    """``text`` without any whitespace: compares values that wrapped over several lines."""
    return "".join(text.split())


def _gray_pages(pdf: bytes, scale: float) -> list[tuple[bytes, int, int, int]]:
    document = pdfium.PdfDocument(pdf)
    try:
        rasters = []
        for page in document:
            bitmap = page.render(scale=scale, grayscale=True)
            rasters.append((bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride))
        return rasters
    finally:
        document.close()


def decode_qr_codes(pdf: bytes, scale: float = 2.0) -> list[str]:
    """Every QR code found, page after page (``scale`` 2 is 144 dpi)."""
    found: list[str] = []
    for buffer, width, height, stride in _gray_pages(pdf, scale):
        image = zxingcpp.ImageView(
            memoryview(buffer).cast("B", (height, stride)),
            width,
            height,
            zxingcpp.ImageFormat.Lum,
            stride,
            1,
        )
        barcodes = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
        found.extend(barcode.text for barcode in barcodes)
    return found


def write_png(pdf: bytes, page_index: int, path: Path, scale: float = 1.5) -> Path:
    """One page as a grayscale PNG, to look at a document with one's own eyes."""
    import struct
    import zlib

    buffer, width, height, stride = _gray_pages(pdf, scale)[page_index]
    rows = b"".join(b"\x00" + buffer[y * stride : y * stride + width] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def chromium_browser_pids(root_pid: int | None = None) -> set[int]:
    """Pids of the Chromium browser processes (not their renderers) under ``root_pid``."""
    root = psutil.Process(root_pid or os.getpid())
    pids = set()
    for process in root.children(recursive=True):
        try:
            cmdline = process.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if (
            cmdline
            and "chrom" in os.path.basename(cmdline[0])
            and not any(arg.startswith("--type=") for arg in cmdline)
            and process.status() != psutil.STATUS_ZOMBIE
        ):
            pids.add(process.pid)
    return pids
