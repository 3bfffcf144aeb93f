"""The JSON Schemas and the AsyncAPI document in docs/ match the pydantic models."""

import json

from shared import topics
from shared.contracts import CONTRACTS
from tools import schemas


def test_docs_are_generated_from_the_current_models():
    for name, text in schemas.expected().items():
        path = schemas.DOCS / name
        assert path.exists(), f"{name} missing: run python -m tools.schemas"
        assert path.read_text() == text, f"{name} stale: run python -m tools.schemas"


def test_every_contract_has_a_channel_and_upstream_fields_are_required():
    document = json.loads((schemas.DOCS / "asyncapi.json").read_text())
    assert {c["address"] for c in document["channels"].values()} == set(CONTRACTS)
    required = {
        topics.ORDER_REJECTED: {"order_id", "reasons"},
        topics.SCHOOL_INITIALISED: {
            "school_id",
            "order_id",
            "uai",
            "name",
            "provisioning",
            "classes",
            "administrator",
        },
        topics.INVOICE_ISSUED: {
            "invoice_number",
            "order_id",
            "school_id",
            "issued_at",
            "billing",
            "lines",
            "total_excl_tax",
            "total_vat",
            "total_incl_tax",
        },
        topics.CREDENTIALS_DISPATCHED: {
            "school_id",
            "request_id",
            "channel",
            "delivered",
            "undeliverable",
        },
        topics.ACCOUNTS_CREATED: {"school_id", "accounts"},
    }
    for topic, fields in required.items():
        schema = CONTRACTS[topic].model_json_schema()
        assert fields <= set(schema["required"]), topic
