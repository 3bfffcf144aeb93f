"""Which broker node a worker talks to: ONE_AMQP_URLS read, and the rotation after a node
goes away (shared/messaging/cluster.py)."""

import pytest
from pydantic import ValidationError

from shared import runtime
from shared.messaging.cluster import AddressRing
from shared.settings import CommonSettings, without_password

A, B, C = (f"amqp://u:secret@node{i}:5672/one" for i in "abc")


def test_the_first_attempt_goes_to_the_first_node_and_stays_while_it_answers() -> None:
    ring = AddressRing([A, B, C])
    assert ring.next_attempt() == A
    ring.connected()
    assert ring.next_attempt() == A  # a reconnect after a blip with no loss seen


def test_a_lost_connection_moves_the_next_attempt_to_the_next_node() -> None:
    ring = AddressRing([A, B, C])
    ring.next_attempt()
    ring.connected()
    ring.lost()
    assert ring.next_attempt() == B
    ring.connected()
    assert ring.current == B


def test_failed_attempts_go_round_the_list() -> None:
    ring = AddressRing([A, B, C])
    tried = [ring.next_attempt() for _ in range(5)]  # none of them connects
    assert tried == [A, B, C, A, B]
    ring.connected()
    assert ring.next_attempt() == B


def test_a_single_address_is_tried_again() -> None:
    ring = AddressRing([A])
    ring.next_attempt()
    ring.lost()
    assert ring.next_attempt() == A


def test_no_address_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        AddressRing([])


def test_amqp_urls_is_read_in_order_and_overrides_amqp_url(monkeypatch) -> None:
    monkeypatch.setenv("ONE_AMQP_URL", "amqp://guest:guest@single:5672/")
    monkeypatch.setenv("ONE_AMQP_URLS", f" {A}, {B} ,{C},")
    assert CommonSettings().broker_addresses == [A, B, C]


def test_amqp_url_alone_still_works(monkeypatch) -> None:
    monkeypatch.delenv("ONE_AMQP_URLS", raising=False)
    monkeypatch.setenv("ONE_AMQP_URL", A)
    assert CommonSettings().broker_addresses == [A]
    monkeypatch.setenv("ONE_AMQP_URLS", "")
    assert CommonSettings().broker_addresses == [A]


def test_a_malformed_list_stops_the_worker_at_start_without_its_passwords(
    monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ONE_AMQP_URLS", f"{A},u:hunter2@node2:5672")
    with pytest.raises(ValidationError):
        CommonSettings()
    with pytest.raises(SystemExit) as stopped:
        runtime.settings_or_exit(CommonSettings)
    assert stopped.value.code == 2
    printed = capsys.readouterr().err
    assert printed.startswith("setting ONE_AMQP_URLS: ")
    assert "node2:5672" in printed  # which address is wrong
    assert "hunter2" not in printed and "secret" not in printed


def test_logs_name_the_node_without_its_password() -> None:
    assert without_password(A) == "amqp://u@nodea:5672/one"
    assert "secret" not in without_password(A)
