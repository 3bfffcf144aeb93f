"""onectl without services: publish input validation, settings, formatting helpers."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from onectl import render
from onectl.broker import DeadLetter
from onectl.cli import app
from onectl.config import OnectlSettings, reader_url
from onectl.validate import Invalid, check_cloudevent, check_file_text, wrap
from tests.support.orders import cloudevent, order_data

EVENT_ID = "6f1c2a4e-0000-4000-8000-000000000001"


def fields(exc: pytest.ExceptionInfo[Invalid]) -> dict[str, str]:
    return {r.field: r.message for r in exc.value.reasons}


def test_a_valid_cloudevent_is_sent_as_written() -> None:
    document = cloudevent(order_data(), event_id=EVENT_ID)
    checked = check_cloudevent(document)
    assert (checked.topic, checked.event_id) == ("order.received", EVENT_ID)
    assert checked.correlationid == "BC-2026-00042"
    assert json.loads(checked.body) == document


def test_every_reason_is_given_field_by_field() -> None:
    data = order_data()
    data["school"]["uai"] = "0741234A"
    data["classes"] = 0
    document = cloudevent(data, event_id=EVENT_ID, major=2)
    with pytest.raises(Invalid) as exc:
        check_cloudevent(document)
    reasons = fields(exc)
    assert "major version 2 unsupported" in reasons["dataschema"]
    assert "check letter" in reasons["data.school.uai"]
    assert "data.classes" in reasons


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"type": "order.shipped"}, "type"),
        ({"dataschema": "urn:one:schema:school.initialised:1"}, "dataschema"),
        ({"id": ""}, "id"),
    ],
)
def test_a_wrong_envelope_is_refused(change: dict[str, Any], field: str) -> None:
    document = {**cloudevent(order_data(), event_id=EVENT_ID), **change}
    with pytest.raises(Invalid) as exc:
        check_cloudevent(document)
    assert field in fields(exc)


def test_missing_envelope_attributes_and_non_json_are_refused() -> None:
    document = cloudevent(order_data(), event_id=EVENT_ID)
    del document["correlationid"]
    with pytest.raises(Invalid) as exc:
        check_cloudevent(document)
    assert "correlationid" in fields(exc)
    with pytest.raises(Invalid) as exc:
        check_file_text(b"{not json")
    assert "(file)" in fields(exc)
    with pytest.raises(Invalid):
        check_cloudevent([1, 2])


def test_plain_data_is_wrapped_in_a_new_cloudevent() -> None:
    checked = wrap(order_data(), "order.received")
    event = json.loads(checked.body)
    assert event["specversion"] == "1.0" and event["type"] == "order.received"
    assert event["dataschema"] == "urn:one:schema:order.received:1"
    assert event["correlationid"] == "BC-2026-00042" == checked.correlationid
    assert event["source"] == "urn:one:onectl" and event["id"] == checked.event_id
    again = wrap(order_data(), "order.received", correlationid="case-7")
    assert again.correlationid == "case-7" and again.event_id != checked.event_id


def test_wrapping_refuses_unknown_topics_and_invalid_data() -> None:
    with pytest.raises(Invalid) as exc:
        wrap(order_data(), "order.shipped")
    assert "unknown type" in fields(exc)["type"]
    data = order_data()
    del data["billing"]
    with pytest.raises(Invalid) as exc:
        wrap(data, "order.received")
    assert "data.billing" in fields(exc)


def test_cli_publish_of_an_invalid_file_exits_2_with_reasons(tmp_path: Any) -> None:
    path = tmp_path / "order.json"
    data = order_data()
    data["administrator"]["email"] = "nobody"
    path.write_text(json.dumps(cloudevent(data, event_id=EVENT_ID)))
    # Nothing is reachable on this port: exit 2 proves validation comes before any I/O.
    env = {"ONE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
    result = CliRunner().invoke(app, ["publish", str(path), "--json"], env=env)
    assert result.exit_code == 2, result.output
    answer = json.loads(result.stdout)
    assert answer["code"] == 2
    assert [r["field"] for r in answer["reasons"]] == ["data.administrator.email"]
    human = CliRunner().invoke(app, ["publish", str(path)], env=env)
    assert human.exit_code == 2 and "data.administrator.email" in human.stderr


def test_cli_check_validates_without_sending(tmp_path: Any) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(order_data()))
    env = {"ONE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
    args = ["publish", str(path), "--wrap", "order.received", "--check", "--json"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["published"] is False
    missing = CliRunner().invoke(app, ["publish", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1


def test_unreachable_services_exit_3(tmp_path: Any) -> None:
    path = tmp_path / "order.json"
    path.write_text(json.dumps(cloudevent(order_data(), event_id=EVENT_ID)))
    env = {
        "ONE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        "ONE_DATABASE_URL": "postgresql://127.0.0.1:1/one",
        "ONE_DATABASE_ADMIN_URL": "postgresql://postgres@127.0.0.1:1/postgres",
    }
    runner = CliRunner()
    assert runner.invoke(app, ["publish", str(path)], env=env).exit_code == 3
    assert runner.invoke(app, ["status", "0741234P"], env=env).exit_code == 3
    assert runner.invoke(app, ["dlq", "list", "--json"], env=env).exit_code == 3


def test_replay_needs_an_id_or_all() -> None:
    assert CliRunner().invoke(app, ["dlq", "replay"]).exit_code == 2


def test_reader_url_uses_the_pipeline_database_with_the_admin_credentials() -> None:
    admin = "postgresql://postgres:pw@db:5432/postgres"
    assert reader_url(admin, "postgresql://db:5432/one") == "postgresql://postgres:pw@db:5432/one"
    pointed = "postgresql://ops@db:5432/pipeline"
    assert reader_url(pointed, "postgresql://db:5432/one") == pointed
    assert reader_url(None, "postgresql://db/one") == "postgresql://db/one"


def test_an_operators_own_login_wins_over_the_admin_url() -> None:
    settings = OnectlSettings(
        database_url="postgresql://db:5432/one",
        database_admin_url="postgresql://postgres:pw@db:5432/postgres",
        ops_database_url="postgresql://alice:pw@db:5432/postgres",
    )
    assert settings.reader_url == "postgresql://alice:pw@db:5432/one"
    unset = OnectlSettings(
        database_url="postgresql://db:5432/one",
        database_admin_url="postgresql://postgres:pw@db:5432/postgres",
        ops_database_url=None,
    )
    assert unset.reader_url == "postgresql://postgres:pw@db:5432/one"


def test_counts_and_short_forms() -> None:
    assert render.count_text({"count": 3}) == "3"
    assert render.count_text({"count": 2, "total": 5}) == "2/5"
    assert render.count_text({"count": 1, "pending": 2, "failed": 0}) == "1 (2 pending)"
    assert render.count_text({"count": None}) == "—"
    assert render.short("0123456789abcdef") == "01234567…" and render.short(None) == "—"
    assert render.when(datetime(2026, 9, 1, 8, 30, 0, 123456, tzinfo=UTC)) == (
        "2026-09-01 08:30:00.123"
    )
    assert render.counts_text({"created": 3, "updated": 0, "left": 1}) == "c3 l1"


def test_json_output_is_plain() -> None:
    value = {"at": datetime(2026, 9, 1, tzinfo=UTC), "ids": ("a",), "n": 1, "none": None}
    assert json.loads(render.to_json(value)) == {
        "at": "2026-09-01T00:00:00+00:00",
        "ids": ["a"],
        "n": 1,
        "none": None,
    }


def status_sample(done: bool) -> dict[str, Any]:
    items = [
        {"key": "order_received", "label": "Bon de commande reçu", "done": True, "count": 1,
         "total": None, "orders": ["BC-1"]},
        {"key": "accounts_activated", "label": "Comptes activés", "done": done, "count": 3,
         "total": 3 if done else 10},
    ]  # fmt: skip
    return {
        "school": {"uai": "0741234P", "name": "École du Lac", "provisioning": "manual"},
        "steps": [{"key": "opening", "title": "Ouverture", "done": done, "items": items}],
        "ready": done,
    }


def test_status_is_a_checklist_with_progress() -> None:
    console = Console(width=120, record=True)
    console.print(render.status_view(status_sample(False)))
    text = console.export_text()
    assert "Étape 1 · Ouverture" in text and "✔ " in text and "○ " in text
    assert "3/10" in text and "BC-1" in text and "Tout est prêt" not in text
    console = Console(width=120, record=True)
    console.print(render.status_view(status_sample(True)))
    assert "Tout est prêt" in console.export_text()


def test_dead_letter_table_and_findings() -> None:
    reason = "unsupported dataschema 'urn:one:schema:order.received:2' [x]"
    letter = DeadLetter("id-1", "order.received", "order_intake", reason, 3, None, {}, b"{}")
    console = Console(width=200, record=True)
    console.print(render.dead_letters_table([letter.summary()]))
    text = console.export_text()
    assert "id-1" in text and "order_intake" in text and reason in text  # no emoji, no markup
    run = {
        "hold_reasons": ["too many leavers"],
        "errors": [{"file": "eleves.csv", "line": 4, "message": "no birth date"}],
        "warnings": [{"message": "empty class"}],
    }
    assert render.findings_lines(run) == [
        "held: too many leavers",
        "error: eleves.csv:4 no birth date",
        "warning: empty class",
    ]


def incoming(headers: dict[str, Any], body: bytes = b"{}", **props: Any) -> Any:
    from types import SimpleNamespace

    values = {"message_id": None, "correlation_id": None, **props}
    return SimpleNamespace(headers=headers, body=body, **values)


def test_dead_letters_read_our_headers_or_the_brokers() -> None:
    from onectl.broker import read_dead_letter

    ours = read_dead_letter(
        incoming(
            {
                "x-one-reason": "gave up after 4 attempts: boom",
                "x-one-topic": "order.received",
                "x-one-worker": "order_intake",
                "x-one-attempt": 3,
                "x-one-dead-at": "2026-09-01T08:30:00+00:00",
            },
            message_id="m-1",
        )
    )
    assert ours.summary() == {
        "id": "m-1",
        "topic": "order.received",
        "worker": "order_intake",
        "reason": "gave up after 4 attempts: boom",
        "attempts": 4,
        "dead_at": "2026-09-01T08:30:00+00:00",
        "correlationid": None,
    }
    event = json.dumps({"id": "e-1", "type": "school.initialised", "correlationid": "BC-1"})
    died = datetime(2026, 9, 1, tzinfo=UTC)
    broker = read_dead_letter(
        incoming(
            {
                "x-death": [
                    {
                        "reason": "delivery_limit",
                        "queue": "one.account_manager",
                        "count": 5,
                        "time": died,
                        "routing-keys": ["school.initialised"],
                    }
                ]
            },
            event.encode(),
        )
    )
    assert (broker.message_id, broker.topic, broker.worker) == (
        "e-1",
        "school.initialised",
        "account_manager",
    )
    assert broker.attempts == 5 and broker.dead_at == died.isoformat()
    assert broker.reason is not None and "delivery_limit" in broker.reason
    assert broker.correlationid == "BC-1"
    raw = read_dead_letter(incoming({}, b"\xff not json"))
    assert (raw.message_id, raw.topic, raw.attempts) == ("?", "", 1)
    assert raw.detail()["body"].endswith("not json")


def test_a_dead_letter_with_hostile_headers_is_read_and_printed_safely() -> None:
    """Anyone may publish: headers of any type and value, control characters that would
    drive the operator's terminal, garbage counts. Read whole; printed as plain data."""
    from decimal import Decimal

    from onectl.broker import read_dead_letter

    letter = read_dead_letter(
        incoming(
            {
                "x-one-attempt": "many\x00",
                "x-one-reason": "\x1b[2J\x1b]0;owned\x07boom\u202e",
                "x-one-topic": b"order.received\r\n",
                "x-death": [{"count": "NaN", "routing-keys": [b"\xff"]}],
                "nested": {"deep": [Decimal("1.5"), None, True, {"\x1b": b"\x9b"}]},
            },
            b'{"id": "e-\x1b[31m1", "type": "accounts.created", "data": {}}',
        )
    )
    assert letter.attempts == 1  # neither count is a number
    for shown in (letter.summary(), letter.detail()):
        text = json.dumps(shown)
        assert "\\u001b" not in text.replace("\\\\u001b", "")  # no raw escape left
        assert "\x1b" not in str(shown) and "\u202e" not in str(shown)
    assert letter.summary()["reason"] == "\\u001b[2J\\u001b]0;owned\\u0007boom\\u202e"
    assert letter.summary()["topic"] == "order.received\\u000d\\u000a"
    console = Console(width=200, record=True)
    console.print(render.dead_letters_table([letter.summary()]))
    assert "\x1b" not in console.export_text()


def test_activation_codes_are_masked_unless_revealed() -> None:
    from onectl.broker import read_dead_letter
    from onectl.redact import MASK

    event = {
        "id": "e-1",
        "type": "accounts.created",
        "data": {"accounts": [{"login": "leo.roy", "activation_code": "abcd3456"}]},
    }
    letter = read_dead_letter(incoming({}, json.dumps(event).encode()))
    masked = letter.detail()
    assert masked["body"]["data"]["accounts"][0] == {"login": "leo.roy", "activation_code": MASK}
    assert "abcd3456" not in json.dumps(masked)
    revealed = letter.detail(reveal=True)
    assert revealed["body"]["data"]["accounts"][0]["activation_code"] == "abcd3456"
    # A body that is not JSON any more (cut short) still hides its codes.
    cut = read_dead_letter(incoming({}, b'{"data": {"activation_code": "abcd3456", "lo'))
    assert "abcd3456" not in json.dumps(cut.detail())
    assert "abcd3456" in json.dumps(cut.detail(reveal=True))
