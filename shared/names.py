"""Person names folded for logins and for matching, the same way in every worker.

``fold_name`` keeps lowercase ASCII letters and digits only: accents folded (``Noël`` ->
``noel``), ligatures spelt out (``Œdipe`` -> ``oedipe``), and everything else (spaces,
hyphens, apostrophes, other scripts) dropped: ``N'Diaye`` -> ``ndiaye``.
"""

import functools
import re
import unicodedata

# Characters that reorder or hide text without showing themselves: a name carrying them
# can print as another ("Trojan Source"). Removed from every name a message brings.
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

# Letters Unicode does not decompose into ASCII letters, spelt as French writes them.
_LIGATURES = str.maketrans(
    {
        "œ": "oe",
        "æ": "ae",
        "ß": "ss",
        "ẞ": "ss",
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
        "ŀ": "l",
    }
)
_NOT_ALNUM = re.compile("[^a-z0-9]+")


@functools.lru_cache(maxsize=1 << 16)  # a school's names repeat: classes, families
def fold_name(text: str) -> str:
    """Lowercase, accents folded to ASCII, letters and digits only: ``N'Diaye`` -> ``ndiaye``."""
    lowered = text.lower()
    if not lowered.isascii():
        lowered = unicodedata.normalize("NFKD", lowered.translate(_LIGATURES))
        lowered = lowered.lower().translate(_LIGATURES).encode("ascii", "ignore").decode()
    return _NOT_ALNUM.sub("", lowered)


def clean_text(value: str) -> str:
    """A name or a short text as a message gives it, made safe to store and print:
    bidirectional and zero-width controls removed; any other control character (a NUL,
    which Postgres refuses, a line break, an escape) refused with a ``ValueError``."""
    value = _INVISIBLE.sub("", value)
    found = _CONTROL.search(value)
    if found is not None:
        raise ValueError(
            f"control character U+{ord(found.group()):04X} at position {found.start()}: not allowed"
        )
    return value
