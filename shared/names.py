"""Person names folded for logins and for matching, the same way in every worker.

``fold_name`` keeps lowercase ASCII letters and digits only: accents folded (``Noël`` ->
``noel``), ligatures spelt out (``Œdipe`` -> ``oedipe``), and everything else (spaces,
hyphens, apostrophes, other scripts) dropped: ``N'Diaye`` -> ``ndiaye``.
"""

import functools
import re
import unicodedata

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
