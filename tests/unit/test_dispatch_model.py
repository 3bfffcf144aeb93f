"""credential_dispatch's vocabulary and rows: each Literal is what the schema allows and the
code uses, the store's row builders refuse any other value, and rows are typed."""

import ast
import json
import re
from dataclasses import FrozenInstanceError, asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args, get_type_hints
from uuid import uuid4

import pytest

from services.credential_dispatch import model, store
from services.credential_dispatch.model import (
    Audited,
    AuditPurpose,
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Dispatch,
    DispatchPurpose,
    SheetRow,
    UnknownValue,
    YearTurnedNotice,
)
from shared.contracts.commands import CredentialsDispatchRequested
from shared.contracts.credentials import CredentialsDispatched

SERVICE = Path(model.__file__).parent
MIGRATIONS = SERVICE / "migrations"


def checked_values() -> dict[tuple[str, str], set[str]]:
    """(table, column) -> the values its CHECK allows once every migration has run."""
    allowed: dict[tuple[str, str], set[str]] = {}
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        sql = re.sub(r"--[^\n]*", "", migration.read_text())
        for statement in sql.split(";"):
            table = re.search(r"(?:CREATE|ALTER) TABLE (\w+)", statement)
            for column, values in re.findall(r"CHECK \((\w+) IN \(([^)]*)\)\)", statement):
                assert table is not None, statement
                allowed[(table.group(1), column)] = set(re.findall(r"'(\w+)'", values))
    return allowed


def test_each_literal_is_what_the_migrations_check_allows() -> None:
    assert checked_values() == {
        ("dispatches", "purpose"): set(get_args(DispatchPurpose)),
        ("deliveries", "kind"): set(get_args(DeliveryKind)),
        ("deliveries", "status"): set(get_args(DeliveryStatus)),
        ("audit", "purpose"): set(get_args(AuditPurpose)),
    }


def test_the_channel_is_the_one_the_command_and_the_event_allow() -> None:
    for contract in (CredentialsDispatchRequested, CredentialsDispatched):
        assert get_args(contract.model_fields["channel"].annotation) == get_args(Channel)


def literal_arguments(module: str, function: str, position: int) -> set[str]:
    """The string constants ``module`` passes as argument ``position`` of ``function``."""
    tree = ast.parse((SERVICE / f"{module}.py").read_text())
    return {
        call.args[position].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == function
        and len(call.args) > position
        and isinstance(call.args[position], ast.Constant)
    }


def test_the_handlers_use_every_kind_and_purpose_and_no_other() -> None:
    assert literal_arguments("handlers", "new_delivery", 0) == set(get_args(DeliveryKind))
    assert literal_arguments("handlers", "_open_dispatch", 1) == set(get_args(DispatchPurpose))
    audited = literal_arguments("handlers", "_audited", 0) | literal_arguments(
        "handlers", "Audited", 1
    )
    assert audited == set(get_args(AuditPurpose))


def test_rows_carry_the_literals_not_bare_strings() -> None:
    assert get_type_hints(Delivery)["kind"] == DeliveryKind
    assert get_type_hints(Delivery)["status"] == DeliveryStatus
    assert get_type_hints(Dispatch)["purpose"] == DispatchPurpose
    assert get_type_hints(Dispatch)["channel"] == Channel
    assert get_type_hints(Dispatch)["notice"] == YearTurnedNotice | None
    assert get_type_hints(Audited)["purpose"] == AuditPurpose
    assert get_type_hints(Audited)["channel"] == Channel | None


def imported_modules(module: str) -> set[str]:
    tree = ast.parse((SERVICE / f"{module}.py").read_text())
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }


def test_the_domain_knows_the_model_and_not_the_store() -> None:
    assert "services.credential_dispatch.model" in imported_modules("domain")
    assert "services.credential_dispatch.store" not in imported_modules("domain")
    assert not {m for m in imported_modules("model") if m.startswith("services.")}


def claimed(**changed: Any) -> dict[str, Any]:
    """A ``claim_due`` record, as a mapping."""
    return {
        "delivery_id": uuid4(),
        "dispatch_id": uuid4(),
        "kind": "sheet",
        "account_id": uuid4(),
        "invoice_number": None,
        "recipient": "parent@example.org",
        "attempts": 2,
    } | changed


def test_a_claimed_delivery_is_built_with_its_fields() -> None:
    record = claimed()
    delivery = store.delivery_row(record)
    assert delivery == Delivery(**record, status="pending", last_error=None)
    with pytest.raises(FrozenInstanceError):
        delivery.kind = "print"  # type: ignore[misc]


def test_a_delivery_of_an_unknown_kind_is_refused_where_it_is_read() -> None:
    with pytest.raises(UnknownValue, match=r"deliveries\.kind 'parcel' is none of first_access"):
        store.delivery_row(claimed(kind="parcel"))


def dispatched(**changed: Any) -> dict[str, Any]:
    """A ``dispatches`` record as the store selects it (``notice::text``)."""
    return {
        "dispatch_id": uuid4(),
        "purpose": "notice",
        "school_id": uuid4(),
        "request_id": None,
        "channel": "email",
        "correlationid": "c-1",
        "causationid": "e-1",
        "requested_by": None,
        "layout": None,
        "selection": None,
        "document_id": None,
        "notice": None,
    } | changed


def test_a_dispatch_reads_its_notice_back_as_written() -> None:
    notice = YearTurnedNotice("École Jules Ferry", ("CP", "CE1"), ("CE1",), closed_by_hand=True)
    record = dispatched(notice=json.dumps(asdict(notice)))
    assert store.dispatch_row(record) == Dispatch(**record | {"notice": notice})
    assert store.dispatch_row(dispatched()).notice is None


@pytest.mark.parametrize(
    ("column", "value"), [("purpose", "newsletter"), ("channel", "fax"), ("channel", None)]
)
def test_a_dispatch_with_an_unknown_purpose_or_channel_is_refused(column: str, value: Any) -> None:
    with pytest.raises(UnknownValue, match=rf"dispatches\.{column} {value!r}"):
        store.dispatch_row(dispatched(**{column: value}))


def sheet_record(**changed: Any) -> dict[str, Any]:
    return {
        "account_id": uuid4(),
        "profile": "relative",
        "first_name": "Anne",
        "last_name": "Martin",
        "login": "anne.martin",
        "activation_code": "ABCD1234",
        "activation_expires_at": datetime(2026, 9, 30, tzinfo=UTC),
        "activated_at": None,
        "school_name": "École Jules Ferry",
        "provisioning": "manual",
        "classes": ["CP"],
        "class_names": [],
        "children_names": ["Zoé Martin"],
    } | changed


def test_a_sheet_row_is_built_with_its_fields_and_tuples() -> None:
    record = sheet_record()
    row = store.sheet_row(record)
    assert isinstance(row, SheetRow)
    assert asdict(row) == record | {
        "classes": ("CP",),
        "class_names": (),
        "children_names": ("Zoé Martin",),
    }
    assert store.sheet_row(sheet_record(provisioning=None)).provisioning is None


def test_a_school_of_unknown_provisioning_is_refused() -> None:
    with pytest.raises(UnknownValue, match=r"schools\.provisioning 'onde'"):
        store.sheet_row(sheet_record(provisioning="onde"))


def test_one_of_returns_the_vocabulary_s_own_word() -> None:
    assert model.one_of(model.CHANNELS, "print", what="channel") == "print"
    with pytest.raises(UnknownValue, match="channel 'PRINT' is none of email, print"):
        model.one_of(model.CHANNELS, "PRINT", what="channel")
