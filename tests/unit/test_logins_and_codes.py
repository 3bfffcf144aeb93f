"""Logins, activation codes and default class names (account_manager's pure domain)."""

import inspect
import itertools
import random
import re
import secrets
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.account_manager.domain import (
    ACTIVATION_ALPHABET,
    ACTIVATION_CODE_LENGTH,
    PROFILE_LABELS,
    activation_expiry,
    fold_name_part,
    login_base,
    login_with_rank,
    manual_class_names,
    new_activation_code,
)

# --- folding and logins ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Jean-Noël", "jeannoel"),
        ("N'Diaye", "ndiaye"),
        ("Éloïse", "eloise"),
        ("Œdipe", "oedipe"),
        ("Lætitia", "laetitia"),
        ("Strauß", "strauss"),
        ("Zoë", "zoe"),
        ("O'Brien-Smith", "obriensmith"),
        ("François", "francois"),
        ("  Anne  Marie ", "annemarie"),
        ("Louis 14", "louis14"),
        ("ÇÀÉÈÊËÎÏÔÙÛÜŸ", "caeeeeiiouuuy"),
        ("Bjørn", "bjorn"),
        ("Łukasz", "lukasz"),
    ],
)
def test_fold_name_part(text: str, folded: str) -> None:
    assert fold_name_part(text) == folded


def test_login_of_the_design_example() -> None:
    assert login_base("Jean-Noël", "N'Diaye") == "jeannoel.ndiaye"


def test_login_examples() -> None:
    assert login_base("Zoë", "O'Brien-Smith") == "zoe.obriensmith"
    assert login_base("Éloïse", "Œdipe") == "eloise.oedipe"
    assert login_base("Jean", "Dupont") == "jean.dupont"
    assert login_base("Marie 2", "DE LA FONTAINE") == "marie2.delafontaine"


@pytest.mark.parametrize("empty", ["李", "---", "", "   ", "'’-"])
def test_a_part_that_folds_to_nothing_is_refused(empty: str) -> None:
    with pytest.raises(ValueError, match="first name") as first:
        login_base(empty, "Dupont")
    assert "last name" not in str(first.value)
    with pytest.raises(ValueError, match="last name") as last:
        login_base("Jean", empty)
    assert "first name" not in str(last.value)


def test_both_parts_empty_are_both_named() -> None:
    with pytest.raises(ValueError, match=r"first name.*last name"):
        login_base("李", "---")


@given(st.text())
def test_folding_keeps_only_ascii_letters_and_digits(text: str) -> None:
    folded = fold_name_part(text)
    assert re.fullmatch(r"[a-z0-9]*", folded)
    assert fold_name_part(folded) == folded


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1))
def test_plain_lowercase_names_are_unchanged(text: str) -> None:
    assert fold_name_part(text) == text
    assert fold_name_part(text.upper()) == text


@pytest.mark.parametrize(
    ("rank", "login"),
    [(1, "jean.dupont"), (2, "jean.dupont2"), (3, "jean.dupont3"), (12, "jean.dupont12")],
)
def test_login_rank_suffix(rank: int, login: str) -> None:
    assert login_with_rank("jean.dupont", rank) == login


def test_login_rank_starts_at_one() -> None:
    with pytest.raises(ValueError):
        login_with_rank("jean.dupont", 0)


def test_ranked_logins_are_distinct() -> None:
    logins = [login_with_rank("jean.dupont", n) for n in range(1, 200)]
    assert len(set(logins)) == len(logins)


# --- activation codes -----------------------------------------------------------------


def test_alphabet_has_no_look_alikes() -> None:
    assert ACTIVATION_ALPHABET == "abcdefghjkmnprstvwxyz3456789"
    assert ACTIVATION_CODE_LENGTH == 8
    assert not set(ACTIVATION_ALPHABET) & set("ilo01uq2")


def test_code_length_and_alphabet() -> None:
    for _ in range(200):
        code = new_activation_code()
        assert len(code) == 8
        assert set(code) <= set(ACTIVATION_ALPHABET)


def test_default_draws_from_secrets() -> None:
    default = inspect.signature(new_activation_code).parameters["choice"].default
    assert default is secrets.choice


def test_default_is_used_when_no_choice_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default was bound at definition time, so patching the module attribute must not
    # change anything: the code still comes from secrets' own generator.
    monkeypatch.setattr(secrets, "choice", lambda seq: seq[0])
    codes = {new_activation_code() for _ in range(20)}
    assert codes != {"aaaaaaaa"}


def test_a_deterministic_choice_gives_the_expected_code() -> None:
    cycle = itertools.count()

    def choice(alphabet: str) -> str:
        return alphabet[next(cycle) % len(alphabet)]

    assert new_activation_code(choice) == "abcdefgh"
    assert new_activation_code(choice) == "jkmnprst"
    assert new_activation_code(lambda alphabet: alphabet[-1]) == "99999999"


def test_choice_is_asked_for_each_character_from_the_alphabet() -> None:
    seen: list[str] = []

    def choice(alphabet: str) -> str:
        seen.append(alphabet)
        return alphabet[0]

    new_activation_code(choice)
    assert seen == [ACTIVATION_ALPHABET] * ACTIVATION_CODE_LENGTH


@given(st.randoms(use_true_random=False))
def test_any_generated_code_uses_only_the_alphabet(rnd: random.Random) -> None:
    code = new_activation_code(rnd.choice)
    assert len(code) == ACTIVATION_CODE_LENGTH
    assert set(code) <= set(ACTIVATION_ALPHABET)


@given(st.data())
def test_any_drawn_characters_make_the_code(data: st.DataObject) -> None:
    def choice(alphabet: str) -> str:
        return data.draw(st.sampled_from(alphabet))

    code = new_activation_code(choice)
    assert re.fullmatch(f"[{ACTIVATION_ALPHABET}]{{8}}", code)


def test_codes_are_nearly_all_distinct() -> None:
    codes = [new_activation_code() for _ in range(10_000)]
    # 28^8 ≈ 3.8e11 codes: the expected number of collisions among 10,000 is ~1e-4.
    assert len(set(codes)) >= 9_999
    # Every character of the alphabet shows up, in every position.
    for position in range(ACTIVATION_CODE_LENGTH):
        assert {code[position] for code in codes} == set(ACTIVATION_ALPHABET)


def test_activation_expiry() -> None:
    now = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
    assert activation_expiry(now, timedelta(days=30)) == datetime(2026, 10, 1, 8, 30, tzinfo=UTC)
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 9, 1, 10, 30, tzinfo=paris)
    assert activation_expiry(local, timedelta(hours=1)) == datetime(2026, 9, 1, 9, 30, tzinfo=UTC)


def test_activation_expiry_refuses_naive_times_and_non_positive_lifetimes() -> None:
    with pytest.raises(ValueError, match="timezone"):
        activation_expiry(datetime(2026, 9, 1), timedelta(days=1))
    with pytest.raises(ValueError, match="positive"):
        activation_expiry(datetime.now(UTC), timedelta(0))


# --- classes and labels ---------------------------------------------------------------


def test_manual_class_names() -> None:
    assert manual_class_names(3) == ["Classe 1", "Classe 2", "Classe 3"]
    assert manual_class_names(1) == ["Classe 1"]
    assert manual_class_names(0) == []
    names = manual_class_names(60)
    assert len(names) == len(set(names)) == 60
    assert names[-1] == "Classe 60"


def test_manual_class_names_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError):
        manual_class_names(-1)


def test_profile_labels() -> None:
    assert dict(PROFILE_LABELS) == {
        "administrator": "Administrateur",
        "teacher": "Enseignant",
        "personnel": "Personnel",
        "student": "Élève",
        "relative": "Parent",
    }
