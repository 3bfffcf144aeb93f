"""The ONDE feed's pure decisions (account_manager): who is an existing account and who is
new, what becomes of a leaver, a parent's classes, logins of a batch, the grace period."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.account_manager.domain import (
    ACTIVATION_ALPHABET,
    ACTIVATION_CODE_LENGTH,
    new_activation_codes,
)
from services.account_manager.feed_rules import (
    Candidate,
    RunProgress,
    choose_matches,
    chunk_turn,
    leaver_fate,
    logins_for,
    match_key,
    parent_classes,
    purge_cutoff,
    relinked,
    restorable,
)

NOW = datetime(2026, 9, 1, 2, 0, tzinfo=UTC)
GRACE = timedelta(days=90)
BORN = date(2018, 3, 14)


def feed_id() -> uuid.UUID:
    return uuid.uuid4()


# --- matching: restored (or taken over) vs created ----------------------------------------


def test_match_key_folds_names_and_keeps_the_birth_date_of_pupils_only():
    assert match_key("student", "Zoé", "Le Fèvre", BORN) == ("student", "zoe", "lefevre", BORN)
    assert match_key("relative", "Zoé", "Le Fèvre", BORN) == ("relative", "zoe", "lefevre", None)


def test_a_leaver_coming_back_under_a_new_feed_id_is_his_deactivated_account():
    key = match_key("student", "Zoé", "Lefèvre", BORN)
    account = uuid.uuid4()
    newcomer = feed_id()
    found = choose_matches(
        [(newcomer, key)],
        [Candidate(account, key, deactivated_at=NOW - timedelta(days=10))],
        now=NOW,
        grace=GRACE,
    )
    assert found == {newcomer: account}


def test_an_account_made_by_hand_and_never_fed_is_taken_over():
    key = match_key("teacher", "Marie", "Curie", None)
    account, newcomer = uuid.uuid4(), feed_id()
    assert choose_matches([(newcomer, key)], [Candidate(account, key, None)], now=NOW, grace=GRACE)


@pytest.mark.parametrize(
    ("candidate_key", "newcomer_key"),
    [
        (("student", "zoe", "lefevre", BORN), ("student", "zoe", "lefevre", date(2018, 3, 15))),
        (("student", "zoe", "lefevre", BORN), ("relative", "zoe", "lefevre", None)),
        (("student", "zoe", "lefevre", BORN), ("student", "zoe", "martin", BORN)),
    ],
)
def test_another_birth_date_profile_or_name_is_a_new_account(candidate_key, newcomer_key):
    candidate = Candidate(uuid.uuid4(), candidate_key, NOW - timedelta(days=1))
    assert choose_matches([(feed_id(), newcomer_key)], [candidate], now=NOW, grace=GRACE) == {}


def test_two_candidates_or_two_newcomers_of_one_key_cannot_be_told_apart():
    key = match_key("relative", "Marie", "Martin", None)
    gone = NOW - timedelta(days=1)
    two = [Candidate(uuid.uuid4(), key, gone), Candidate(uuid.uuid4(), key, gone)]
    assert choose_matches([(feed_id(), key)], two, now=NOW, grace=GRACE) == {}
    one = [Candidate(uuid.uuid4(), key, gone)]
    assert choose_matches([(feed_id(), key), (feed_id(), key)], one, now=NOW, grace=GRACE) == {}


def test_a_leaver_past_his_grace_period_is_not_restored():
    key = match_key("student", "Zoé", "Lefèvre", BORN)
    expired = Candidate(uuid.uuid4(), key, NOW - GRACE - timedelta(seconds=1))
    assert choose_matches([(feed_id(), key)], [expired], now=NOW, grace=GRACE) == {}


# --- leavers and the grace period -----------------------------------------------------------


def test_a_never_activated_leaver_is_deleted_an_activated_one_deactivated():
    assert leaver_fate(activated=False, deactivated=False) == "delete"
    assert leaver_fate(activated=True, deactivated=False) == "deactivate"
    assert leaver_fate(activated=True, deactivated=True) == "already_gone"


def test_grace_period_expiry():
    assert purge_cutoff(NOW, GRACE) == NOW - GRACE
    assert restorable(NOW - GRACE + timedelta(seconds=1), NOW, GRACE)
    assert not restorable(NOW - GRACE, NOW, GRACE)  # due for the purge from that instant
    assert not restorable(NOW, NOW, timedelta(0))  # no grace: gone at once
    with pytest.raises(ValueError, match="timezone"):
        purge_cutoff(NOW.replace(tzinfo=None), GRACE)
    with pytest.raises(ValueError, match="negative"):
        purge_cutoff(NOW, timedelta(days=-1))


# --- parents' classes -----------------------------------------------------------------------


def test_a_parent_is_in_the_classes_of_all_his_children_and_loses_them_with_them():
    mum, dad, lonely = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    zoe, leo = uuid.uuid4(), uuid.uuid4()
    cp, cm1 = uuid.uuid4(), uuid.uuid4()
    derived = parent_classes(
        [(mum, zoe), (mum, leo), (dad, zoe)],
        {zoe: [cp], leo: [cm1]},
        parents=[mum, dad, lonely],
    )
    assert derived == {mum: {cp, cm1}, dad: {cp}, lonely: frozenset()}


def test_a_child_with_no_class_yet_gives_his_parent_none():
    mum, zoe = uuid.uuid4(), uuid.uuid4()
    assert parent_classes([(mum, zoe)], {}) == {mum: frozenset()}


# --- logins of a batch ----------------------------------------------------------------------


def test_only_parents_whose_children_differ_from_their_stored_links_are_linked_again():
    zoe, leo, tom = feed_id(), feed_id(), feed_id()
    same, fewer, other, childless, gone, new = (feed_id() for _ in range(6))
    desired = {
        same: [leo, zoe],  # his email changed, not his children (order aside)
        fewer: [zoe],
        other: [tom],
        childless: [],
        gone: [],
        new: [zoe, zoe],
    }
    stored = {same: {zoe, leo}, fewer: {zoe, leo}, other: {zoe}, gone: {tom}}
    assert relinked(desired, stored, fresh={new}) == {
        fewer: frozenset({zoe}),
        other: frozenset({tom}),
        gone: frozenset(),
        new: frozenset({zoe}),
    }


def test_a_parent_just_created_is_linked_even_with_no_child():
    mum = feed_id()
    assert relinked({mum: []}, {}, fresh={mum}) == {mum: frozenset()}
    assert relinked({mum: []}, {}) == {}


def test_a_batch_takes_the_ranks_it_reserved_in_order():
    # jean.dupont's counter was at 1 before the batch reserved 2 ranks: 2 and 3 are its own.
    bases = ["jean.dupont", "zoe.martin", "jean.dupont"]
    assert logins_for(bases, {"jean.dupont": 3, "zoe.martin": 1}) == [
        "jean.dupont2",
        "zoe.martin",
        "jean.dupont3",
    ]


def test_codes_of_a_chunk_are_drawn_in_one_go_from_the_code_alphabet():
    codes = new_activation_codes(500)
    assert len(codes) == len(set(codes)) == 500
    assert all(
        len(c) == ACTIVATION_CODE_LENGTH and set(c) <= set(ACTIVATION_ALPHABET) for c in codes
    )
    # Every letter comes up (20,000 letters over 28: missing one would be a bias).
    assert set("".join(new_activation_codes(2500))) == set(ACTIVATION_ALPHABET)
    assert new_activation_codes(0) == []


# --- runs of a school in order ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "version", "turn"),
    [
        (None, 1, "apply"),  # the school's first run
        (None, 2, "wait"),  # its first run has not come
        (RunProgress(version=3, chunks=2, applied=1), 3, "apply"),  # the run under way
        (RunProgress(version=3, chunks=2, applied=2), 3, "apply"),  # a chunk sent twice
        (RunProgress(version=3, chunks=2, applied=2), 4, "apply"),  # the next, the last whole
        (RunProgress(version=3, chunks=2, applied=1), 4, "wait"),  # the last not whole yet
        (RunProgress(version=3, chunks=1, applied=1), 5, "wait"),  # run 4 has not come
        (RunProgress(version=3, chunks=1, applied=1), 2, "stale"),  # would undo run 3
    ],
)
def test_runs_of_a_school_are_applied_in_order(progress, version, turn):
    assert chunk_turn(progress, version) == turn


def test_a_school_fed_before_runs_were_numbered_takes_the_first_that_comes():
    assert chunk_turn(None, 7, fed_unnumbered=True) == "apply"
    assert chunk_turn(None, 7) == "wait"
