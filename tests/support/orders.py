"""Sample purchase orders, valid unless a test spoils them."""

from typing import Any

from shared.contracts.common import uai_check_letter


def uai(department: str, number: int) -> str:
    digits = f"{department}{number:04d}"
    return digits + uai_check_letter(digits)


def order_data(
    order_id: str = "BC-2026-00042",
    *,
    department: str = "074",
    number: int = 1234,
    classes: int = 6,
    provisioning: str | None = None,
    admin_email: str = "claire.martin@example.org",
    billing_email: str = "factures@example.org",
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": order_id,
        "ordered_at": "2026-09-01T08:30:00Z",
        "school": {
            "uai": uai(department, number),
            "name": "École primaire du Lac",
            "address": {"line1": "1 rue du Lac", "postal_code": "74000", "city": "Annecy"},
        },
        "administrator": {"first_name": "Claire", "last_name": "Martin", "email": admin_email},
        "billing": {
            "name": "Mairie d'Annecy",
            "email": billing_email,
            "address": {
                "line1": "1 place de l'Hôtel de Ville",
                "postal_code": "74000",
                "city": "Annecy",
            },
            "siret": "21740010600019",
            "order_reference": "EJ-123",
        },
        "classes": classes,
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
    if provisioning:
        data["provisioning"] = provisioning
    return data


def cloudevent(
    data: dict[str, Any],
    *,
    event_id: str,
    event_type: str = "order.received",
    major: int = 1,
    correlationid: str | None = None,
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:one:upstream:orders",
        "type": event_type,
        "time": "2026-09-01T08:30:00Z",
        "datacontenttype": "application/json",
        "dataschema": f"urn:one:schema:{event_type}:{major}",
        "correlationid": correlationid or data.get("order_id") or event_id,
        "data": data,
    }
