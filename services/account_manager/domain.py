"""account_manager's pure rules: logins, activation codes, default class names, labels.

Nothing here does I/O or awaits. Uniqueness of logins across replicas is the store's job;
this module only says what the n-th candidate login is.
"""

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType
from uuid import UUID

from shared import topics
from shared.names import fold_name

SOURCE = topics.source_of(topics.ACCOUNT_MANAGER)
ACTIVATION_ALPHABET = "abcdefghjkmnprstvwxyz3456789"
ACTIVATION_CODE_LENGTH = 8

PROFILE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "administrator": "Administrateur",
        "teacher": "Enseignant",
        "personnel": "Personnel",
        "student": "Élève",
        "relative": "Parent",
    }
)


def fold_name_part(text: str) -> str:
    """A name part as it appears in a login: lowercase ASCII letters and digits only
    (``Jean-Noël`` -> ``jeannoel``); see ``shared.names``."""
    return fold_name(text)


def login_base(first_name: str, last_name: str) -> str:
    """``firstname.lastname`` folded (``Jean-Noël``, ``N'Diaye`` -> ``jeannoel.ndiaye``).

    Raises ValueError when a part keeps no letter or digit once folded (``"李"``, ``"---"``).
    """
    first, last = fold_name_part(first_name), fold_name_part(last_name)
    empty = [
        f"{label} {value!r}"
        for label, value, folded in (
            ("first name", first_name, first),
            ("last name", last_name, last),
        )
        if not folded
    ]
    if empty:
        raise ValueError(
            f"cannot build a login: {' and '.join(empty)} "
            "keep no Latin letter or digit once accents and punctuation are removed"
        )
    return f"{first}.{last}"


def login_with_rank(base: str, rank: int) -> str:
    """The ``rank``-th candidate login: ``jean.dupont``, then ``jean.dupont2``, …"""
    if rank < 1:
        raise ValueError(f"login ranks start at 1, got {rank}")
    return base if rank == 1 else f"{base}{rank}"


def new_activation_code(choice: Callable[[str], str] = secrets.choice) -> str:
    """A one-time code of 8 characters without look-alikes, drawn with ``secrets``."""
    return "".join(choice(ACTIVATION_ALPHABET) for _ in range(ACTIVATION_CODE_LENGTH))


def new_activation_codes(count: int) -> list[str]:
    """``count`` codes as ``new_activation_code`` makes them, drawn in one call to
    ``secrets`` (a feed chunk needs hundreds). Bytes of 252 and above are dropped so that
    every letter stays equally likely (252 = 9 x 28)."""
    size = len(ACTIVATION_ALPHABET)
    usable = 256 - 256 % size
    letters: list[str] = []
    while len(letters) < count * ACTIVATION_CODE_LENGTH:
        letters += [
            ACTIVATION_ALPHABET[b % size] for b in secrets.token_bytes(count * 9) if b < usable
        ]
    return [
        "".join(letters[i : i + ACTIVATION_CODE_LENGTH])
        for i in range(0, count * ACTIVATION_CODE_LENGTH, ACTIVATION_CODE_LENGTH)
    ]


def activation_expiry(now: datetime, ttl: timedelta) -> datetime:
    """When a code issued at ``now`` (timezone-aware) stops working."""
    if now.utcoffset() is None:
        raise ValueError("activation expiry needs a timezone-aware 'now'")
    if ttl <= timedelta(0):
        raise ValueError(f"activation code lifetime must be positive, got {ttl}")
    return now + ttl


def manual_class_names(count: int) -> list[str]:
    """Default names of the classes of a manual school: ``Classe 1`` … ``Classe N``."""
    if count < 0:
        raise ValueError(f"a school cannot have {count} classes")
    return [f"Classe {n}" for n in range(1, count + 1)]


@dataclass(frozen=True)
class NewAccount:
    """An account about to be written: built by ``new_account`` only."""

    account_id: UUID
    school_id: UUID
    profile: str
    first_name: str
    last_name: str
    email: str | None
    birth_date: date | None
    activation_code: str
    activation_expires_at: datetime
    first_folded: str = ""
    last_folded: str = ""
    feed_id: UUID | None = None  # the ONDE feed's id of the person, for a feed account
    ine: str | None = None  # a pupil's national id, when the feed gives it


def new_account(
    school_id: UUID,
    profile: str,
    first_name: str,
    last_name: str,
    *,
    email: str | None,
    birth_date: date | None,
    expires_at: datetime,
    code: str | None = None,
    feed_id: UUID | None = None,
    ine: str | None = None,
) -> NewAccount:
    """The one way a new account is made, whoever asks (a school's opening, a command, the
    feed): a fresh id, a new activation code (``code`` when one was drawn in a batch), its
    expiry, and the folded names its matching uses."""
    return NewAccount(
        account_id=uuid.uuid4(),
        school_id=school_id,
        profile=profile,
        first_name=first_name,
        last_name=last_name,
        email=email,
        birth_date=birth_date,
        activation_code=code if code is not None else new_activation_code(),
        activation_expires_at=expires_at,
        first_folded=fold_name_part(first_name),
        last_folded=fold_name_part(last_name),
        feed_id=feed_id,
        ine=ine if profile == "student" else None,
    )
