"""order_intake's pure rules: eligibility for the ONDE feed, fingerprints, invoice amounts,
and what an order or a cancellation decides given what the store already holds.

Nothing here does I/O or awaits; the handlers load what a message needs, ask here, and
save what it returns (the events it makes are built in ``events``).
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from types import MappingProxyType
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python

from shared.contracts.common import Reason
from shared.contracts.orders import (
    InvoiceIssued,
    InvoiceLine,
    OrderLine,
    OrderReceived,
    Provisioning,
    VatBreakdown,
)

DEFAULT_ACADEMIES: Mapping[str, str] = MappingProxyType(
    {
        "054": "Nancy-Metz",
        "055": "Nancy-Metz",
        "057": "Nancy-Metz",
        "088": "Nancy-Metz",
        "008": "Reims",
        "010": "Reims",
        "051": "Reims",
        "052": "Reims",
        "074": "Haute-Savoie",
    }
)
"""Department code (as the first three digits of a UAI) -> académie or area fed by ONDE."""

CENT = Decimal("0.01")


def _department_key(code: str) -> str:
    """``"74"``, ``" 074 "`` and ``"074"`` all name department 074 (as in a UAI)."""
    code = code.strip()
    return code.zfill(3) if code.isdigit() else code.upper()


@dataclass(frozen=True)
class FeedCoverage:
    """Which departments the automatic ONDE feed covers (from configuration)."""

    academies: Mapping[str, str] = field(default_factory=lambda: DEFAULT_ACADEMIES, hash=False)

    def __post_init__(self) -> None:
        normalised = {_department_key(code): area for code, area in self.academies.items()}
        object.__setattr__(self, "academies", MappingProxyType(normalised))

    def is_eligible(self, department: str) -> bool:
        return _department_key(department) in self.academies

    def academie_of(self, department: str) -> str | None:
        return self.academies.get(_department_key(department))

    def describe(self) -> str:
        """The eligible areas in words: ``Nancy-Metz (054, 055, 057, 088), …``."""
        by_area: dict[str, list[str]] = {}
        for code, area in self.academies.items():
            by_area.setdefault(area, []).append(code)
        if not by_area:
            return "none"
        return ", ".join(f"{area} ({', '.join(sorted(codes))})" for area, codes in by_area.items())


def department_of(uai: str) -> str:
    """The department code of a UAI: its first three digits (``0741234P`` -> ``074``)."""
    value = uai.strip()
    if len(value) < 3 or not value[:3].isascii() or not value[:3].isdigit():
        raise ValueError(f"{uai!r} is not a UAI: it should start with 3 digits")
    return value[:3]


def decide_provisioning(order: OrderReceived, policy: FeedCoverage) -> Provisioning | list[Reason]:
    """The provisioning mode of an order's school, or why the one asked is refused.

    Not given: ``automatic`` where the department is fed by ONDE, ``manual`` elsewhere.
    ``manual`` is always allowed; ``automatic`` only where the school is eligible.
    """
    department = department_of(order.school.uai)
    eligible = policy.is_eligible(department)
    if order.provisioning is None:
        return "automatic" if eligible else "manual"
    if order.provisioning == "automatic" and not eligible:
        return [
            Reason(
                field="provisioning",
                message=(
                    f"automatic provisioning (ONDE feed) is not available for school "
                    f"{order.school.uai} in department {department}; it is only available "
                    f"in {policy.describe()}. Ask for 'manual' provisioning or leave it empty."
                ),
            )
        ]
    return order.provisioning


def _canonical(value: Any) -> Any:
    """A JSON-ready value where equal content has one spelling: decimals by numeric value
    (``150``, ``150.00``, ``1.5E+2`` are one price), aware datetimes in UTC."""
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text == "-0" else text
    if isinstance(value, datetime):
        if value.utcoffset() is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    return to_jsonable_python(value)


def order_fingerprint(order: OrderReceived) -> str:
    """sha256 (hex) of the order's canonical JSON (sorted keys, no whitespace).

    Built from the validated model, so key order, spacing and unknown fields in the input
    do not change it, nor does the spelling of a number (``150`` / ``150.00``) or of a
    timestamp's offset (``08:30Z`` / ``10:30+02:00``); any change of content does. Fields
    left at their default are omitted, so that adding an optional field to the contract
    (a minor version) does not change the fingerprints already stored.
    """
    data = _canonical(order.model_dump(mode="python", exclude_defaults=True))
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def invoice_number(year: int, seq: int) -> str:
    """``ONE-<year>-<6-digit sequence>``: ``(2026, 1)`` -> ``ONE-2026-000001``."""
    return _document_number("ONE", "invoice", year, seq)


def credit_note_number(year: int, seq: int) -> str:
    """``AVOIR-<year>-<6-digit sequence>``: ``(2026, 1)`` -> ``AVOIR-2026-000001``."""
    return _document_number("AVOIR", "credit note", year, seq)


def _document_number(prefix: str, kind: str, year: int, seq: int) -> str:
    if not 1000 <= year <= 9999:
        raise ValueError(f"{kind} year {year} is not a 4-digit year")
    if seq < 1:
        raise ValueError(f"{kind} sequence numbers start at 1, got {seq}")
    return f"{prefix}-{year:04d}-{seq:06d}"


@dataclass(frozen=True)
class InvoiceTotals:
    lines: list[InvoiceLine]
    vat: list[VatBreakdown]
    total_excl_tax: Decimal
    total_vat: Decimal
    total_incl_tax: Decimal


def _cents(amount: Decimal) -> Decimal:
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded != 0 else Decimal("0.00")  # never "-0.00"


def _rate(rate: Decimal) -> Decimal:
    """One spelling per rate, at least two decimals: 0.2 -> 0.20, 0.0550 -> 0.055."""
    normal = rate.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        return normal.quantize(CENT)
    return normal


def compute_totals(lines: Sequence[OrderLine]) -> InvoiceTotals:
    """Invoice lines and totals, in ``Decimal`` rounded half-up to the cent.

    A line's total is quantity × unit price. VAT is computed once per rate on the sum of
    the lines at that rate, then rounded (French practice), so the VAT never drifts from
    rounding line by line. Totals incl. tax = excl. tax + VAT, exactly.
    """
    with localcontext() as ctx:
        ctx.prec = 28
        invoice_lines: list[InvoiceLine] = []
        bases: dict[Decimal, Decimal] = {}
        for line in lines:
            rate = _rate(line.vat_rate)
            total = _cents(line.quantity * line.unit_price)
            invoice_lines.append(
                InvoiceLine(
                    sku=line.sku,
                    label=line.label,
                    quantity=line.quantity,
                    unit_price=_cents(line.unit_price),
                    vat_rate=rate,
                    total_excl_tax=total,
                )
            )
            bases[rate] = bases.get(rate, Decimal("0.00")) + total
        vat = [
            VatBreakdown(rate=rate, base=_cents(base), amount=_cents(base * rate))
            for rate, base in sorted(bases.items())
        ]
        total_excl_tax = _cents(sum((item.base for item in vat), Decimal("0.00")))
        total_vat = _cents(sum((item.amount for item in vat), Decimal("0.00")))
        return InvoiceTotals(
            lines=invoice_lines,
            vat=vat,
            total_excl_tax=total_excl_tax,
            total_vat=total_vat,
            total_incl_tax=total_excl_tax + total_vat,
        )


@dataclass(frozen=True)
class SchoolRow:
    school_id: UUID
    uai: str
    name: str
    provisioning: Provisioning


@dataclass(frozen=True)
class AlreadyApplied:
    """The same message content was applied before: acknowledged without effect."""


@dataclass(frozen=True)
class Refused:
    reasons: list[Reason]


@dataclass(frozen=True)
class Accepted:
    """An order to record and invoice; ``opened``: it opens the school's space (a UAI
    already known is a renewal, invoiced without opening it again)."""

    school: SchoolRow
    opened: bool
    department: str
    academie: str | None


@dataclass(frozen=True)
class Cancel:
    """A cancellation to answer with a credit note for the whole of ``invoice``."""

    invoice: InvoiceIssued


def decide_order(
    order: OrderReceived,
    *,
    fingerprint: str,
    known_fingerprint: str | None,
    known_school: SchoolRow | None,
    coverage: FeedCoverage,
    new_school_id: UUID,
) -> AlreadyApplied | Refused | Accepted:
    if known_fingerprint == fingerprint:
        return AlreadyApplied()
    if known_fingerprint is not None:
        message = (
            f"order {order.order_id} was already received with other content; "
            "send a new order id for a new order"
        )
        return Refused([Reason(field="order_id", message=message)])
    provisioning = decide_provisioning(order, coverage)
    if isinstance(provisioning, list):
        return Refused(provisioning)
    department = department_of(order.school.uai)
    academie = coverage.academie_of(department)
    if known_school is not None:
        return Accepted(known_school, opened=False, department=department, academie=academie)
    school = SchoolRow(new_school_id, order.school.uai, order.school.name, provisioning)
    return Accepted(school, opened=True, department=department, academie=academie)


def decide_cancellation(
    order_id: str, *, invoice: InvoiceIssued | None, credit_note: str | None
) -> AlreadyApplied | Refused | Cancel:
    """A credit note once per order: a second cancellation is acknowledged without
    effect, one of an order unknown here refused."""
    if invoice is None:
        return Refused([Reason(field="order_id", message=f"order {order_id} is not known here")])
    if credit_note is not None:
        return AlreadyApplied()
    return Cancel(invoice)
