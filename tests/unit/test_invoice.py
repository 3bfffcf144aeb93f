"""Invoice amounts, invoice numbers and order fingerprints (order_intake's pure domain)."""

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.order_intake.domain import (
    InvoiceTotals,
    compute_totals,
    invoice_number,
    order_fingerprint,
)
from shared.contracts.orders import OrderLine, OrderReceived
from tests.unit.test_order_validation import SAMPLE, sample


def line(quantity: int, unit_price: str, vat_rate: str, sku: str = "SKU") -> OrderLine:
    return OrderLine(
        sku=sku,
        label=f"Article {sku}",
        quantity=quantity,
        unit_price=unit_price,
        vat_rate=vat_rate,
    )


def money(value: Decimal) -> bool:
    """A Decimal with exactly two decimals."""
    return isinstance(value, Decimal) and value.as_tuple().exponent == -2


def assert_consistent(totals: InvoiceTotals) -> None:
    assert totals.total_excl_tax == sum(item.total_excl_tax for item in totals.lines)
    assert totals.total_excl_tax == sum(item.base for item in totals.vat)
    assert totals.total_vat == sum(item.amount for item in totals.vat)
    assert totals.total_incl_tax == totals.total_excl_tax + totals.total_vat
    for amount in (totals.total_excl_tax, totals.total_vat, totals.total_incl_tax):
        assert money(amount), amount
    for item in totals.lines:
        assert money(item.total_excl_tax) and money(item.unit_price)
    for vat in totals.vat:
        assert money(vat.base) and money(vat.amount) and isinstance(vat.rate, Decimal)
    assert [v.rate for v in totals.vat] == sorted(v.rate for v in totals.vat)
    assert len({v.rate for v in totals.vat}) == len(totals.vat)


# --- totals ---------------------------------------------------------------------------


def test_single_line_of_the_sample_order() -> None:
    totals = compute_totals([line(1, "150.00", "0.20")])
    assert totals.total_excl_tax == Decimal("150.00")
    assert totals.total_vat == Decimal("30.00")
    assert totals.total_incl_tax == Decimal("180.00")
    assert_consistent(totals)


def test_several_rates() -> None:
    totals = compute_totals(
        [
            line(2, "150.00", "0.20", "A"),
            line(3, "12.35", "0.055", "B"),
            line(1, "19.99", "0.10", "C"),
            line(1, "10.05", "0.055", "D"),
        ]
    )
    assert [(i.sku, i.total_excl_tax) for i in totals.lines] == [
        ("A", Decimal("300.00")),
        ("B", Decimal("37.05")),
        ("C", Decimal("19.99")),
        ("D", Decimal("10.05")),
    ]
    assert [(v.rate, v.base, v.amount) for v in totals.vat] == [
        (Decimal("0.055"), Decimal("47.10"), Decimal("2.59")),  # 2.5905
        (Decimal("0.10"), Decimal("19.99"), Decimal("2.00")),  # 1.999
        (Decimal("0.20"), Decimal("300.00"), Decimal("60.00")),
    ]
    assert totals.total_excl_tax == Decimal("367.09")
    assert totals.total_vat == Decimal("64.59")
    assert totals.total_incl_tax == Decimal("431.68")
    assert_consistent(totals)


def test_vat_is_computed_per_rate_not_per_line() -> None:
    # Per line: 0.025 -> 0.03, three times 0.09. On the base of the rate: 0.075 -> 0.08.
    totals = compute_totals([line(1, "0.25", "0.10", s) for s in "ABC"])
    assert totals.vat[0].base == Decimal("0.75")
    assert totals.total_vat == Decimal("0.08")
    assert totals.total_incl_tax == Decimal("0.83")


@pytest.mark.parametrize(
    ("unit_price", "rate", "vat"),
    [
        ("0.05", "0.10", "0.01"),  # 0.005: half-even would give 0.00
        ("2.25", "0.10", "0.23"),  # 0.225: half-even would give 0.22
        ("0.45", "0.055", "0.02"),  # 0.02475 rounds down
        ("0.10", "0.055", "0.01"),  # 0.0055 rounds up
        ("8.50", "0.055", "0.47"),  # 0.4675
    ],
)
def test_vat_rounds_half_up(unit_price: str, rate: str, vat: str) -> None:
    totals = compute_totals([line(1, unit_price, rate)])
    assert totals.total_vat == Decimal(vat)
    assert_consistent(totals)


def test_line_total_is_quantity_times_unit_price() -> None:
    totals = compute_totals([line(7, "0.99", "0.20"), line(100_000, "1234.56", "0.20")])
    assert totals.lines[0].total_excl_tax == Decimal("6.93")
    assert totals.lines[1].total_excl_tax == Decimal("123456000.00")
    assert totals.total_excl_tax == Decimal("123456006.93")
    assert_consistent(totals)


def test_amounts_are_decimals_with_two_places_even_for_whole_prices() -> None:
    totals = compute_totals([line(1, "150", "0.2")])
    assert totals.lines[0].unit_price == Decimal("150.00")
    assert str(totals.lines[0].unit_price) == "150.00"
    assert str(totals.total_incl_tax) == "180.00"
    assert_consistent(totals)


def test_one_breakdown_per_rate_whatever_its_spelling() -> None:
    totals = compute_totals(
        [line(1, "10.00", "0.2"), line(1, "5.00", "0.20"), line(1, "1.00", "0.2000")]
    )
    assert len(totals.vat) == 1
    assert totals.vat[0].rate == Decimal("0.20")
    assert totals.vat[0].base == Decimal("16.00")
    assert totals.total_vat == Decimal("3.20")


def test_zero_rate_and_free_lines() -> None:
    totals = compute_totals([line(3, "0.00", "0.20"), line(1, "40.00", "0")])
    assert [(v.rate, v.amount) for v in totals.vat] == [
        (Decimal("0"), Decimal("0.00")),
        (Decimal("0.20"), Decimal("0.00")),
    ]
    assert totals.total_incl_tax == Decimal("40.00")
    assert_consistent(totals)


def test_lines_keep_the_order_data() -> None:
    totals = compute_totals([line(2, "150.00", "0.20", "ONE-SCHOOL-1Y")])
    item = totals.lines[0]
    assert (item.sku, item.label, item.quantity) == ("ONE-SCHOOL-1Y", "Article ONE-SCHOOL-1Y", 2)
    assert (item.unit_price, item.vat_rate) == (Decimal("150.00"), Decimal("0.20"))


_RATES = ["0", "0.021", "0.055", "0.10", "0.20"]


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=100_000),
            st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False),
            st.sampled_from(_RATES),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_totals_always_add_up(items: list[tuple[int, Decimal, str]]) -> None:
    totals = compute_totals([line(q, str(p), r) for q, p, r in items])
    assert_consistent(totals)
    for vat in totals.vat:
        exact = vat.base * vat.rate
        assert abs(vat.amount - exact) <= Decimal("0.005")


# --- invoice numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "seq", "number"),
    [
        (2026, 1, "ONE-2026-000001"),
        (2026, 42, "ONE-2026-000042"),
        (2027, 999_999, "ONE-2027-999999"),
    ],
)
def test_invoice_number(year: int, seq: int, number: str) -> None:
    assert invoice_number(year, seq) == number


def test_invoice_numbers_sort_in_sequence_order() -> None:
    numbers = [invoice_number(2026, n) for n in (1, 2, 10, 100, 1000)]
    assert numbers == sorted(numbers)


@pytest.mark.parametrize("seq", [0, -1])
def test_invoice_sequence_starts_at_one(seq: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        invoice_number(2026, seq)


# --- fingerprints ---------------------------------------------------------------------


def fingerprint_of(data: dict[str, Any]) -> str:
    return order_fingerprint(OrderReceived.model_validate(data))


def reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def test_fingerprint_is_a_sha256_hex_digest() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint_of(SAMPLE))


def test_fingerprint_is_sha256_of_the_canonical_json() -> None:
    # Stored fingerprints must stay valid across releases: this pins the exact scheme
    # (sorted keys, no spaces, UTF-8, decimals by value, UTC times, defaults omitted).
    canonical = (
        '{"administrator":{"email":"claire.martin@example.org","first_name":"Claire",'
        '"last_name":"Martin"},"billing":{"address":{"city":"Annecy",'
        '"line1":"Esplanade de l\'Hôtel de Ville","postal_code":"74000"},'
        '"email":"factures@example.org","name":"Mairie d\'Annecy","order_reference":"EJ-123",'
        '"siret":"21740010600019"},"classes":6,"lines":[{"label":"Abonnement ONE — 1 an",'
        '"quantity":1,"sku":"ONE-SCHOOL-1Y","unit_price":"150","vat_rate":"0.2"}],'
        '"order_id":"BC-2026-00042","ordered_at":"2026-09-01T08:30:00+00:00",'
        '"provisioning":"automatic","school":{"address":{"city":"Annecy","line1":"1 rue du Lac",'
        '"postal_code":"74000"},"name":"École primaire du Lac","uai":"0741234P"}}'
    )
    assert fingerprint_of(SAMPLE) == hashlib.sha256(canonical.encode()).hexdigest()


def test_fingerprint_survives_a_new_optional_field_in_the_contract() -> None:
    class OrderReceivedV1_1(OrderReceived):  # a minor version adds an optional field
        note: str | None = None

    newer = OrderReceivedV1_1.model_validate(SAMPLE)
    assert order_fingerprint(newer) == fingerprint_of(SAMPLE)


def test_fingerprint_is_stable_under_key_order_and_whitespace() -> None:
    compact = json.dumps(SAMPLE, separators=(",", ":"))
    spaced = json.dumps(reordered(SAMPLE), indent=4, ensure_ascii=True)
    assert list(json.loads(spaced)) != list(SAMPLE)
    first = order_fingerprint(OrderReceived.model_validate_json(compact))
    second = order_fingerprint(OrderReceived.model_validate_json(spaced))
    assert first == second == fingerprint_of(SAMPLE)


def test_fingerprint_ignores_unknown_fields_and_number_spelling() -> None:
    assert fingerprint_of({**SAMPLE, "comment": "minor addition"}) == fingerprint_of(SAMPLE)
    assert fingerprint_of(sample(lines__0__unit_price="150")) == fingerprint_of(SAMPLE)
    assert fingerprint_of(sample(lines__0__vat_rate="0.2")) == fingerprint_of(SAMPLE)
    assert fingerprint_of(sample(ordered_at="2026-09-01T10:30:00+02:00")) == fingerprint_of(SAMPLE)


@pytest.mark.parametrize(
    "changes",
    [
        {"lines__0__quantity": 2},
        {"lines__0__unit_price": "150.01"},
        {"classes": 7},
        {"administrator__email": "claire.martin2@example.org"},
        {"billing__order_reference": "EJ-124"},
        {"provisioning": "manual"},
        {"ordered_at": "2026-09-01T08:30:01Z"},
        {"school__name": "École primaire du Lac bleu"},
    ],
)
def test_fingerprint_changes_with_content(changes: dict[str, Any]) -> None:
    assert fingerprint_of(sample(**changes)) != fingerprint_of(SAMPLE)
