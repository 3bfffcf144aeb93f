"""order.received validation (DESIGN §3) and the provisioning decision of order_intake."""

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from services.order_intake.domain import (
    DEFAULT_ACADEMIES,
    FeedCoverage,
    decide_provisioning,
    department_of,
)
from shared.contracts.common import Reason, luhn_valid, reasons_from, uai_check_letter
from shared.contracts.orders import OrderReceived

SAMPLE: dict[str, Any] = {
    "order_id": "BC-2026-00042",
    "ordered_at": "2026-09-01T08:30:00Z",
    "school": {
        "uai": "0741234P",
        "name": "École primaire du Lac",
        "address": {"line1": "1 rue du Lac", "postal_code": "74000", "city": "Annecy"},
    },
    "administrator": {
        "first_name": "Claire",
        "last_name": "Martin",
        "email": "claire.martin@example.org",
    },
    "billing": {
        "name": "Mairie d'Annecy",
        "email": "factures@example.org",
        "address": {
            "line1": "Esplanade de l'Hôtel de Ville",
            "postal_code": "74000",
            "city": "Annecy",
        },
        "siret": "21740010600019",
        "order_reference": "EJ-123",
    },
    "classes": 6,
    "provisioning": "automatic",
    "lines": [
        {
            "sku": "ONE-SCHOOL-1Y",
            "label": "Abonnement ONE — 1 an",
            "quantity": 1,
            "unit_price": "150.00",
            "vat_rate": "0.20",
        }
    ],
}


DROP = object()


def sample(**changes: Any) -> dict[str, Any]:
    """A deep copy of the sample order; ``changes`` maps paths written with ``__`` to new
    values (``lines__0__quantity=0``); the value ``DROP`` removes the key."""
    data = copy.deepcopy(SAMPLE)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is DROP:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def reasons_of(data: dict[str, Any]) -> list[Reason]:
    with pytest.raises(ValidationError) as caught:
        OrderReceived.model_validate(data)
    return reasons_from(caught.value)


def only_reason(data: dict[str, Any], field: str) -> Reason:
    reasons = reasons_of(data)
    assert [r.field for r in reasons] == [field], reasons
    return reasons[0]


def order(**changes: Any) -> OrderReceived:
    return OrderReceived.model_validate(sample(**changes))


# --- the sample itself ------------------------------------------------------------------


def test_sample_uai_and_siret_are_genuinely_valid() -> None:
    assert uai_check_letter("0741234") == "P"
    assert "ABCDEFGHJKLMNPRSTUVWXYZ"[741234 % 23] == "P"
    assert luhn_valid("21740010600019")


def test_sample_order_is_valid() -> None:
    parsed = OrderReceived.model_validate(SAMPLE)
    assert parsed.school.uai == "0741234P"
    assert parsed.billing.siret == "21740010600019"
    assert parsed.classes == 6
    assert parsed.provisioning == "automatic"
    assert str(parsed.lines[0].unit_price) == "150.00"


# --- UAI ------------------------------------------------------------------------------


@pytest.mark.parametrize("uai", ["074123P", "07412345", "ABCDEFGH", "0741234", "0741234PP", ""])
def test_uai_format(uai: str) -> None:
    reason = only_reason(sample(school__uai=uai), "school.uai")
    assert "7 digits" in reason.message


def test_uai_wrong_check_letter_names_the_expected_letter() -> None:
    reason = only_reason(sample(school__uai="0741234A"), "school.uai")
    assert "should be P" in reason.message


def test_uai_is_normalised_to_uppercase_without_spaces() -> None:
    assert order(school__uai=" 0741234p ").school.uai == "0741234P"


@pytest.mark.parametrize(
    ("digits", "letter"),
    [("0010001", "W"), ("0741234", "P"), ("0751234", "J"), ("0541234", "Y"), ("0000000", "A")],
)
def test_check_letter_examples(digits: str, letter: str) -> None:
    assert uai_check_letter(digits) == letter
    assert order(school__uai=digits + letter).school.uai == digits + letter


def test_check_letter_skips_look_alike_letters() -> None:
    letters = {uai_check_letter(f"{n:07d}") for n in range(23)}
    assert len(letters) == 23
    assert not letters & {"I", "O", "Q"}


# --- emails ---------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "claire@", "@example.org", "a b@example.org"])
def test_administrator_email(email: str) -> None:
    only_reason(sample(administrator__email=email), "administrator.email")


@pytest.mark.parametrize("email", ["factures", "factures@@example.org", ""])
def test_billing_email(email: str) -> None:
    only_reason(sample(billing__email=email), "billing.email")


# --- classes and lines ------------------------------------------------------------------


@pytest.mark.parametrize("classes", [0, 61, -1])
def test_classes_out_of_range(classes: int) -> None:
    only_reason(sample(classes=classes), "classes")


@pytest.mark.parametrize("classes", [1, 60])
def test_classes_bounds_accepted(classes: int) -> None:
    assert order(classes=classes).classes == classes


def test_at_least_one_line() -> None:
    only_reason(sample(lines=[]), "lines")


def test_quantity_zero() -> None:
    only_reason(sample(lines__0__quantity=0), "lines.0.quantity")


def test_negative_price() -> None:
    only_reason(sample(lines__0__unit_price="-0.01"), "lines.0.unit_price")


def test_free_line_is_allowed() -> None:
    assert str(order(lines__0__unit_price="0.00").lines[0].unit_price) == "0.00"


def test_error_in_second_line_names_its_index() -> None:
    data = sample()
    data["lines"].append({**data["lines"][0], "quantity": 0})
    only_reason(data, "lines.1.quantity")


# --- SIRET ---------------------------------------------------------------------------


@pytest.mark.parametrize("siret", ["2174001060001", "217400106000190", "2174001060001A", "abc"])
def test_siret_not_14_digits(siret: str) -> None:
    reason = only_reason(sample(billing__siret=siret), "billing.siret")
    assert "14 digits" in reason.message


def test_siret_failing_luhn() -> None:
    assert not luhn_valid("21740010600018")
    reason = only_reason(sample(billing__siret="21740010600018"), "billing.siret")
    assert "Luhn" in reason.message


def test_valid_siret_passes_and_spaces_are_dropped() -> None:
    assert order(billing__siret="217 400 106 00019").billing.siret == "21740010600019"


# --- optional fields ------------------------------------------------------------------


def test_optional_fields_absent() -> None:
    parsed = order(
        billing__siret=DROP,
        billing__order_reference=DROP,
        provisioning=DROP,
    )
    assert parsed.billing.siret is None
    assert parsed.billing.order_reference is None
    assert parsed.provisioning is None
    assert parsed.school.address.line2 is None


def test_optional_fields_may_be_null() -> None:
    parsed = order(billing__siret=None, billing__order_reference=None, provisioning=None)
    assert parsed.billing.siret is None
    assert parsed.provisioning is None


def test_unknown_provisioning_mode() -> None:
    only_reason(sample(provisioning="nightly"), "provisioning")


# --- several errors -------------------------------------------------------------------


def test_every_reason_is_given_at_once() -> None:
    data = sample(
        school__uai="0741234A",
        administrator__email="nobody",
        billing__email="nobody@",
        billing__siret="21740010600018",
        classes=0,
        lines__0__quantity=0,
    )
    data["lines"].append({**SAMPLE["lines"][0], "unit_price": "-5"})
    fields = {r.field for r in reasons_of(data)}
    assert fields == {
        "school.uai",
        "administrator.email",
        "billing.email",
        "billing.siret",
        "classes",
        "lines.0.quantity",
        "lines.1.unit_price",
    }


def test_missing_required_fields_are_named() -> None:
    data = sample(school__uai=DROP, administrator=DROP)
    fields = {r.field for r in reasons_of(data)}
    assert fields == {"school.uai", "administrator"}


# --- department and provisioning ---------------------------------------------------------


@pytest.mark.parametrize(
    ("uai", "department"), [("0741234P", "074"), ("0010001W", "001"), ("9711234P", "971")]
)
def test_department_of(uai: str, department: str) -> None:
    assert department_of(uai) == department


def test_department_of_refuses_a_non_uai() -> None:
    with pytest.raises(ValueError, match="3 digits"):
        department_of("AB")


def test_default_academies() -> None:
    assert dict(DEFAULT_ACADEMIES) == {
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


def test_feed_coverage_lookup() -> None:
    policy = FeedCoverage(DEFAULT_ACADEMIES)
    assert policy.is_eligible("074")
    assert policy.is_eligible("057")
    assert not policy.is_eligible("075")
    assert policy.academie_of("051") == "Reims"
    assert policy.academie_of("088") == "Nancy-Metz"
    assert policy.academie_of("074") == "Haute-Savoie"
    assert policy.academie_of("075") is None


def test_feed_coverage_accepts_department_codes_without_leading_zero() -> None:
    policy = FeedCoverage({"74": "Haute-Savoie"})
    assert policy.is_eligible("074")
    assert policy.academie_of("074") == "Haute-Savoie"


ELIGIBLE = ["0741234P", "0541234Y", "0081234Y", "0571234G"]
NOT_ELIGIBLE = ["0751234J", "0010001W", "0131234W"]


@pytest.mark.parametrize("uai", ELIGIBLE)
def test_default_provisioning_is_automatic_where_eligible(uai: str) -> None:
    assert decide_provisioning(order(school__uai=uai, provisioning=None), FeedCoverage()) == (
        "automatic"
    )


@pytest.mark.parametrize("uai", NOT_ELIGIBLE)
def test_default_provisioning_is_manual_elsewhere(uai: str) -> None:
    assert decide_provisioning(order(school__uai=uai, provisioning=None), FeedCoverage()) == (
        "manual"
    )


@pytest.mark.parametrize("uai", ELIGIBLE + NOT_ELIGIBLE)
def test_manual_is_always_allowed(uai: str) -> None:
    assert decide_provisioning(order(school__uai=uai, provisioning="manual"), FeedCoverage()) == (
        "manual"
    )


def test_automatic_where_eligible() -> None:
    assert decide_provisioning(order(provisioning="automatic"), FeedCoverage()) == "automatic"


def test_automatic_for_a_non_eligible_school_is_refused() -> None:
    decided = decide_provisioning(
        order(school__uai="0751234J", provisioning="automatic"), FeedCoverage()
    )
    assert isinstance(decided, list)
    assert [r.field for r in decided] == ["provisioning"]
    message = decided[0].message
    assert "075" in message
    for area in ("Nancy-Metz", "Reims", "Haute-Savoie"):
        assert area in message


def test_eligibility_comes_from_the_policy_not_a_hard_coded_list() -> None:
    policy = FeedCoverage({"075": "Paris"})
    assert decide_provisioning(order(school__uai="0751234J", provisioning=None), policy) == (
        "automatic"
    )
    refused = decide_provisioning(order(provisioning="automatic"), policy)
    assert isinstance(refused, list)
    assert "Paris" in refused[0].message
    assert decide_provisioning(order(provisioning=None), policy) == "manual"
