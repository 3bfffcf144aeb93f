"""What a dead letter shows an operator: no activation code unless asked for, and no
character that could drive his terminal (escape sequences, bidirectional overrides).

A dead letter is whatever someone published: every header and every field is shown as
data, whatever its type, never as markup or control."""

import re
from typing import Any

MASK = "••••••••"
SECRET_KEYS = frozenset({"activation_code", "password"})
# C0 and C1 controls (a line break too: one value, one line), and the characters that
# reorder or hide text.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
# An activation code in a body that is not JSON (a truncated or hand-made message).
_CODE_IN_TEXT = re.compile(r'("(?:activation_code|password)"\s*:\s*")[^"]*(")')


def printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def shown(value: Any, *, reveal: bool = False) -> Any:
    """``value`` (a header, a CloudEvent, any JSON) made safe to print: strings without
    control characters, secrets masked unless ``reveal``; other types as their text."""
    if isinstance(value, dict):
        return {
            printable(str(key)): MASK
            if not reveal and str(key) in SECRET_KEYS and item
            else shown(item, reveal=reveal)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [shown(item, reveal=reveal) for item in value]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return printable(value if reveal else _CODE_IN_TEXT.sub(rf"\1{MASK}\2", value))
    if value is None or isinstance(value, bool | int | float):
        return value
    return printable(str(value))
