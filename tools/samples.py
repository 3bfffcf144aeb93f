"""Sample documents for tests and benchmarks: an invoice of three lines at two VAT rates,
for a mairie, as order_intake issues one."""

from typing import Any
from uuid import uuid4

from shared.contracts.orders import InvoiceIssued


def invoice(**overrides: Any) -> InvoiceIssued:
    """The sample invoice, ``overrides`` replacing its fields."""
    data = {
        "invoice_number": "ONE-2026-000001",
        "order_id": "BC-2026-00042",
        "order_reference": "EJ-123",
        "school_id": str(uuid4()),
        "school_name": "École primaire du Lac",
        "uai": "0741234P",
        "issued_at": "2026-09-01T08:30:00Z",
        "due_on": "2026-10-01",
        "seller": {
            "name": "Open Digital Education",
            "address": {"line1": "2 rue du Port", "postal_code": "75001", "city": "Paris"},
            "siret": "81234567800011",
            "vat_number": "FR12812345678",
        },
        "billing": {
            "name": "Mairie d'Annecy",
            "address": {
                "line1": "1 place de l'Hôtel de Ville",
                "postal_code": "74000",
                "city": "Annecy",
            },
            "siret": "21740010600019",
        },
        "lines": [
            {
                "sku": "ONE-SCHOOL-1Y",
                "label": "Abonnement ONE — 1 an",
                "quantity": 1,
                "unit_price": "150.00",
                "vat_rate": "0.20",
                "total_excl_tax": "150.00",
            },
            {
                "sku": "ONE-USERS",
                "label": "Comptes supplémentaires",
                "quantity": 1210,
                "unit_price": "0.9",
                "vat_rate": "0.20",
                "total_excl_tax": "1089.00",
            },
            {
                "sku": "ONE-BOOK",
                "label": "Guide imprimé",
                "quantity": 3,
                "unit_price": "12.00",
                "vat_rate": "0.055",
                "total_excl_tax": "36.00",
            },
        ],
        "vat": [
            {"rate": "0.20", "base": "1239.00", "amount": "247.80"},
            {"rate": "0.055", "base": "36.00", "amount": "1.98"},
        ],
        "total_excl_tax": "1275.00",
        "total_vat": "249.78",
        "total_incl_tax": "1524.78",
    }
    return InvoiceIssued.model_validate({**data, **overrides})
