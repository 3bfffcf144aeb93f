"""Value types that several contracts share."""

import re
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
)

from shared.names import clean_text

UAI_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_UAI_RE = re.compile(r"^\d{7}[A-Z]$")


def uai_check_letter(digits: str) -> str:
    return UAI_LETTERS[int(digits) % 23]


def valid_uai(value: str) -> bool:
    """Seven ASCII digits and their check letter, exactly (no trimming, no case folding)."""
    return (
        len(value) == 8
        and value[:7].isascii()
        and value[:7].isdigit()
        and uai_check_letter(value[:7]) == value[7]
    )


def _check_uai(value: str) -> str:
    value = value.strip().upper()
    if not _UAI_RE.match(value):
        raise ValueError("a UAI is 7 digits followed by a letter, e.g. 0741234P")
    expected = uai_check_letter(value[:7])
    if value[7] != expected:
        raise ValueError(f"check letter of UAI {value} should be {expected}")
    return value


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        n = int(char)
        if position % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _check_siret(value: str) -> str:
    value = value.replace(" ", "")
    if not re.fullmatch(r"\d{14}", value):
        raise ValueError("a SIRET is 14 digits")
    if not luhn_valid(value):
        raise ValueError("SIRET fails the Luhn check")
    return value


Uai = Annotated[str, AfterValidator(_check_uai)]
Siret = Annotated[str, AfterValidator(_check_siret)]


def _clean(value: str) -> str:
    value = clean_text(value).strip()
    if not value:
        raise ValueError("empty once invisible characters are removed")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    AfterValidator(_clean),
]
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(_clean),
]
ClassName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=60),
    AfterValidator(_clean),
]
Email = EmailStr
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class Model(BaseModel):
    """Nested value objects: each field validated, fields this version does not know
    ignored (a newer sender may add some: a minor version), frozen once read."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Address(Model):
    line1: Text
    line2: Text | None = None
    postal_code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{5}$")]
    city: Name


class Person(Model):
    first_name: Name
    last_name: Name
    email: Email


class Reason(Model):
    """One reason a message or a command was refused, naming the field at fault."""

    field: str
    message: str


def reasons_from(error: ValidationError) -> list[Reason]:
    """Field-by-field reasons from a pydantic error, in words a person can act on."""
    reasons = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(message)"
        message = item["msg"].removeprefix("Value error, ")
        reasons.append(Reason(field=field, message=message))
    return reasons
