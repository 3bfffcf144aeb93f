"""Bytes to text: UTF-8 (with or without a byte order mark) when they decode strictly as
UTF-8, ISO-8859-1 otherwise, and the signs that the encoding went wrong on the way."""

import codecs
import re
from dataclasses import dataclass

from services.directory_sync.onde.model import Problem

# Bytes 0x80-0x9F are control characters in ISO-8859-1; Windows-1252, which French office
# software writes while calling it "Latin-1", puts letters there (Œ, œ, ’, €…). Those are
# taken as Windows-1252; the five bytes it leaves undefined stay C1 controls (suspicious).
_CP1252_C1 = {
    byte: char
    for byte in range(0x80, 0xA0)
    if (char := bytes([byte]).decode("cp1252", errors="ignore"))
}
_C1_TO_CP1252 = str.maketrans({chr(byte): char for byte, char in _CP1252_C1.items()})
# How a UTF-8 continuation byte (0x80-0xBF) looks once misread as Latin-1 or Windows-1252.
_CONTINUATIONS = "".join(
    sorted({chr(byte) for byte in range(0x80, 0xC0)} | set(_CP1252_C1.values()))
)
# "é" written as UTF-8 then read as Latin-1 shows as "Ã©", "É" as "Ã‰", "œ" as "Å“", "’" as
# "â€™": a lead byte's glyph followed by a continuation byte's glyph.
_CONTINUATION = frozenset(_CONTINUATIONS)
_ENCODING_CHECKS = {
    "mojibake": "text encoded twice (mojibake such as 'Ã©' for 'é')",
    "c1": "control characters U+0080-U+009F",
    "nul": "NUL bytes",
    "replacement": "replacement characters U+FFFD (data already lost)",
}
# Every suspicious sequence starts with one of these: a single scan of a character class
# finds them all, far cheaper than one regular expression per check (the mojibake one an
# alternation).
_SUSPECT_CHARACTER = re.compile("[ÂÃÅâ\x00\u0080-\u009f\ufffd]")


@dataclass
class _Finding:
    count: int
    position: int
    sample: str


def _encoding_findings(text: str) -> dict[str, _Finding]:
    """Each kind of suspicious sequence found (see ``_ENCODING_CHECKS``), with its count
    and first occurrence. Mojibake is a lead glyph (Â, Ã, Å) then a continuation byte's
    glyph, or "â€"; a C1 character counts as such even inside mojibake."""
    found: dict[str, _Finding] = {}
    for hit in _SUSPECT_CHARACTER.finditer(text):
        char, at = hit.group(), hit.start()
        sample = char
        if char in "ÂÃÅâ":
            sample = text[at : at + 2]
            following = sample[1:]
            if not (following == "€" if char == "â" else following in _CONTINUATION):
                continue
            kind = "mojibake"
        else:
            kind = {"\x00": "nul", "\ufffd": "replacement"}.get(char, "c1")
        if kind in found:
            found[kind].count += 1
        else:
            found[kind] = _Finding(1, at, sample)
    return found


def _line_at(text: str, position: int) -> int:
    prefix = text[:position]
    return prefix.count("\n") + prefix.count("\r") - prefix.count("\r\n") + 1


_C1_BYTES = bytes(range(0x80, 0xA0))


def _latin1(raw: bytes) -> str:
    text = raw.decode("iso-8859-1")
    has_c1 = len(raw.translate(None, _C1_BYTES)) != len(raw)  # 16 us a file; a regex, 100
    return text.translate(_C1_TO_CP1252) if has_c1 else text


def decode(raw: bytes, file: str) -> tuple[str, list[Problem]]:
    """The file's text, and why its encoding looks wrong (if it does).

    UTF-8 (with or without a byte order mark) when the bytes decode strictly as UTF-8,
    ISO-8859-1 otherwise (0x80-0x9F read as Windows-1252). Mojibake (``Ã©``, ``Ã¨``…: UTF-8
    read as Latin-1 and written again), C1 control characters, NUL bytes, replacement
    characters and UTF-16 are reported as "suspicious encoding".
    """
    problems: list[Problem] = []
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = raw.decode("utf-16", errors="replace")
        problems.append(
            Problem(file, None, "suspicious encoding: UTF-16 file (expected ISO-8859-1)")
        )
    elif raw.startswith(codecs.BOM_UTF8):
        body = raw[len(codecs.BOM_UTF8) :]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = _latin1(body)
            problems.append(
                Problem(
                    file,
                    _line_at(text, exc.start),
                    "suspicious encoding: starts with a UTF-8 byte order mark "
                    f"but byte {exc.start + len(codecs.BOM_UTF8)} is not UTF-8",
                )
            )
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _latin1(raw)

    findings = _encoding_findings(text)
    for kind, what in _ENCODING_CHECKS.items():
        if (finding := findings.get(kind)) is not None:
            problems.append(
                Problem(
                    file,
                    _line_at(text, finding.position),
                    f"suspicious encoding: {what}, {finding.count} occurrence(s), "
                    f"first {finding.sample!r}",
                )
            )
    return text, problems
