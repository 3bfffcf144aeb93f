"""One person across schools (docs/one-person-across-schools.md §1, §3, §5), on the fake
store: a newcomer pupil is an account of another school when his INE is that account's and
no other's; a newcomer parent when his folded names and email are those of one fed parent
account of another school (names alone: a possible duplicate); a turnover leaver with an
INE is kept for the grace period; leaving one school while another holds him detaches him
from it only."""

import uuid
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from structlog.testing import capture_logs

from services.account_manager import domain
from services.account_manager.settings import AccountManagerSettings
from shared import topics
from shared.contracts.directory import FeedClass, FeedPerson
from shared.envelope import Envelope
from tests.fakes.account_manager import AccountManager
from tests.support.commands import school_initialised
from tests.support.feed_events import FedSchool, chunk, parent, pupil, teacher

MATERNELLE = [FeedClass(name="GS", level="GS")]
ELEMENTAIRE = [FeedClass(name="CP", level="CP")]
BORN = date(2020, 5, 4)
INE = "123456789AB"


@pytest.fixture
def worker() -> AccountManager:
    return AccountManager()


async def open_fed(worker: AccountManager, number: int) -> FedSchool:
    data = school_initialised(
        str(uuid.uuid4()),
        department="074",
        number=number,
        provisioning="automatic",
        classes=0,
        name=f"École {number}",
        academie="Grenoble",
    )
    out = await worker.send(topics.SCHOOL_INITIALISED, data)
    [admin] = next(e.data for e in out if e.type == topics.ACCOUNTS_CREATED).accounts
    return FedSchool(UUID(data["school_id"]), data["uai"], str(admin.account_id))


def types(events: list[Envelope[Any]]) -> list[str]:
    return [e.type for e in events]


def one(events: list[Envelope[Any]], topic: str) -> Any:
    [found] = [e.data for e in events if e.type == topic]
    return found


async def feed(
    worker: AccountManager, school: FedSchool, classes: list[FeedClass], version: int, **more: Any
) -> list[Envelope[Any]]:
    return await worker.send_chunk(
        chunk(school, uuid.uuid4(), 0, 1, classes, version=version, **more)
    )


async def two_schools(worker: AccountManager) -> tuple[FedSchool, FedSchool]:
    return await open_fed(worker, 1), await open_fed(worker, 2)


async def in_a(
    worker: AccountManager, a: FedSchool, ine: str | None = INE, **more: Any
) -> tuple[FeedPerson, UUID]:
    lou = pupil("Lou", "Roux", BORN, "GS", ine=ine, **more)
    out = await feed(worker, a, MATERNELLE, 1, created=[lou])
    [made] = one(out, topics.ACCOUNTS_CREATED).accounts
    return lou, made.account_id


def arriving(person: FeedPerson, klass: str = "CP", **more: Any) -> FeedPerson:
    """The same child in another school's export: a feed id of that school."""
    return person.model_copy(update={"feed_id": uuid.uuid4(), "classes": [klass], **more})


async def test_a_pupil_with_the_same_ine_in_another_school_is_attached_to_it(worker):
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a)
    before = worker.store.accounts[lou_id]
    login, code = before.login, before.activation_code

    in_b = arriving(lou)
    out = await feed(worker, b, ELEMENTAIRE, 1, created=[in_b])

    assert topics.ACCOUNTS_CREATED not in types(out)
    assert topics.ACCOUNTS_UPDATED not in types(out)
    attached = one(out, topics.ACCOUNTS_ATTACHED)
    assert attached.school_id == b.school_id
    [view] = attached.accounts
    assert (view.account_id, view.login) == (lou_id, login)
    assert sorted(view.classes) == ["CP", "GS"]  # the whole account, in both schools
    assert "activation_code" not in view.model_dump()
    stored = worker.store.accounts[lou_id]
    assert (stored.school_id, stored.login, stored.activation_code) == (a.school_id, login, code)
    assert stored.activated_at is None and stored.deactivated_at is None
    assert (lou_id, b.school_id) in worker.store.account_schools
    # classes.created first, then the account joining.
    assert types(out).index(topics.CLASSES_CREATED) < types(out).index(topics.ACCOUNTS_ATTACHED)
    # B's next night: he is B's by his feed id there, his GS class in A stays.
    again = await feed(
        worker, b, ELEMENTAIRE, 2, updated=[in_b.model_copy(update={"email": "l@x.org"})]
    )
    assert topics.ACCOUNTS_ATTACHED not in types(again)
    assert len([a for a in worker.store.accounts.values() if a.profile == "student"]) == 1
    assert len(worker.store._live_classes(lou_id)) == 2


async def test_without_an_ine_a_pupil_is_never_the_same_across_schools(worker):
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a, ine=None)
    out = await feed(worker, b, ELEMENTAIRE, 1, created=[arriving(lou, ine=None)])
    [made] = one(out, topics.ACCOUNTS_CREATED).accounts
    assert made.account_id != lou_id
    assert topics.ACCOUNTS_ATTACHED not in types(out)
    assert not worker.store.account_schools


async def test_two_accounts_with_the_newcomers_ine_make_a_new_account(worker):
    a, b = await two_schools(worker)
    # A's export gives one INE to two pupils (a mistake not yet corrected).
    lou = pupil("Lou", "Roux", BORN, "GS", ine=INE)
    eve = pupil("Ève", "Roux", BORN, "GS", ine=INE)
    await feed(worker, a, MATERNELLE, 1, created=[lou, eve])
    out = await feed(worker, b, ELEMENTAIRE, 1, created=[arriving(lou)])
    [made] = one(out, topics.ACCOUNTS_CREATED).accounts
    assert made.account_id not in {a_id for a_id, _ in worker.store.account_schools}
    assert topics.ACCOUNTS_ATTACHED not in types(out)
    assert not worker.store.account_schools


async def test_the_setting_off_keeps_each_school_alone(worker):
    worker = AccountManager(settings=AccountManagerSettings(accounts_across_schools=False))
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a)
    out = await feed(worker, b, ELEMENTAIRE, 1, created=[arriving(lou)])
    [made] = one(out, topics.ACCOUNTS_CREATED).accounts
    assert made.account_id != lou_id


async def test_a_gs_pupil_leaving_at_the_turnover_keeps_his_account_in_his_new_school(worker):
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a)
    login, code = worker.store.accounts[lou_id].login, worker.store.accounts[lou_id].activation_code
    # June's turnover in A: he leaves (never activated). Kept, deactivated, not deleted.
    june = await feed(worker, a, MATERNELLE, 2, left=[lou.feed_id], turnover=True)
    assert topics.ACCOUNTS_DELETED not in types(june)
    [gone] = one(june, topics.ACCOUNTS_DEACTIVATED).accounts
    assert gone.account_id == lou_id
    assert worker.store.accounts[lou_id].deactivated_at == worker.now
    # September in B, within the grace period: the same account, re-homed to B.
    worker.now += timedelta(days=70)
    september = await feed(worker, b, ELEMENTAIRE, 1, created=[arriving(lou)])
    assert topics.ACCOUNTS_CREATED not in types(september)
    assert topics.ACCOUNTS_UPDATED not in types(september)
    [back] = one(september, topics.ACCOUNTS_ATTACHED).accounts
    assert (back.account_id, back.login, back.classes) == (lou_id, login, ["CP"])
    stored = worker.store.accounts[lou_id]
    assert (stored.school_id, stored.deactivated_at, stored.activated_at) == (
        b.school_id,
        None,
        None,
    )
    assert not worker.store.account_schools  # B is his home: no attachment
    # Leaving voided his code: a new one, told to the readers after he joined B.
    assert stored.activation_code is not None and stored.activation_code != code
    renewed = one(september, topics.ACTIVATION_CODE_RENEWED)
    assert (renewed.account_id, renewed.school_id) == (lou_id, b.school_id)
    assert renewed.activation_code == stored.activation_code
    assert renewed.activation_expires_at == stored.activation_expires_at > worker.now
    order = types(september)
    assert order.index(topics.ACCOUNTS_ATTACHED) < order.index(topics.ACTIVATION_CODE_RENEWED)


async def test_a_turnover_leaver_without_ine_or_past_the_grace_period_is_not_kept(worker):
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a, ine=None)
    june = await feed(worker, a, MATERNELLE, 2, left=[lou.feed_id], turnover=True)
    assert [v.account_id for v in one(june, topics.ACCOUNTS_DELETED).accounts] == [lou_id]
    tom = pupil("Tom", "Roux", BORN, "GS", ine="999")
    await feed(worker, a, MATERNELLE, 3, created=[tom])
    await feed(worker, a, MATERNELLE, 4, left=[tom.feed_id], turnover=True)
    worker.now += timedelta(days=91)
    late = await feed(worker, b, ELEMENTAIRE, 1, created=[arriving(tom)])
    assert topics.ACCOUNTS_CREATED in types(late) and topics.ACCOUNTS_ATTACHED not in types(late)


async def test_an_activated_pupil_keeps_his_activation_across_schools(worker):
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a)
    activated = {"account_id": str(lou_id), "activated_at": "2026-09-05T08:00:00Z"}
    await worker.send(topics.ACCOUNT_ACTIVATED, activated)
    await feed(worker, b, ELEMENTAIRE, 1, created=[arriving(lou)])
    stored = worker.store.accounts[lou_id]
    assert stored.activated_at is not None and stored.activated_at.day == 5
    assert stored.activation_code is None  # spent, and no new one


async def test_an_activated_pupil_taken_back_after_the_turnover_gets_no_new_code(worker):
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a)
    activated = {"account_id": str(lou_id), "activated_at": "2026-09-05T08:00:00Z"}
    await worker.send(topics.ACCOUNT_ACTIVATED, activated)
    await feed(worker, a, MATERNELLE, 2, left=[lou.feed_id], turnover=True)
    september = await feed(worker, b, ELEMENTAIRE, 1, created=[arriving(lou)])
    assert one(september, topics.ACCOUNTS_ATTACHED).accounts[0].account_id == lou_id
    assert topics.ACTIVATION_CODE_RENEWED not in types(september)
    assert worker.store.accounts[lou_id].activation_code is None


async def test_leaving_one_of_his_schools_detaches_him_from_it_only(worker):
    a, b = await two_schools(worker)
    lou, lou_id = await in_a(worker, a)
    in_b = arriving(lou)
    await feed(worker, b, ELEMENTAIRE, 1, created=[in_b])
    # He leaves B while A holds him: detached from B, not deactivated.
    out = await feed(worker, b, ELEMENTAIRE, 2, left=[in_b.feed_id])
    detached = one(out, topics.ACCOUNTS_DETACHED)
    assert detached.school_id == b.school_id
    assert [(v.account_id, v.classes) for v in detached.accounts] == [(lou_id, ["GS"])]
    assert topics.ACCOUNTS_DEACTIVATED not in types(out)
    assert topics.ACCOUNTS_DELETED not in types(out)
    assert worker.store.accounts[lou_id].deactivated_at is None
    assert not worker.store.account_schools
    # Back in B, then leaving his home A: his home moves to B.
    again = arriving(lou)
    await feed(worker, b, ELEMENTAIRE, 3, created=[again])
    out = await feed(worker, a, MATERNELLE, 2, left=[lou.feed_id])
    assert one(out, topics.ACCOUNTS_DETACHED).school_id == a.school_id
    assert topics.ACCOUNTS_DEACTIVATED not in types(out)
    stored = worker.store.accounts[lou_id]
    assert (stored.school_id, stored.feed_id) == (b.school_id, again.feed_id)
    assert not worker.store.account_schools
    assert [worker.store.classes[c].name for c in worker.store._live_classes(lou_id)] == ["CP"]
    # Leaving B, his last school: as any leaver (never activated: deleted).
    out = await feed(worker, b, ELEMENTAIRE, 4, left=[again.feed_id])
    assert [v.account_id for v in one(out, topics.ACCOUNTS_DELETED).accounts] == [lou_id]


# Parents ---------------------------------------------------------------------------------

EMAIL = "ada.roux@example.org"


async def family_in_a(
    worker: AccountManager, a: FedSchool, email: str | None = EMAIL
) -> tuple[FeedPerson, UUID, UUID]:
    """Lou in A's GS and his mother Ada: Ada, her account, Lou's account."""
    lou = pupil("Lou", "Roux", BORN, "GS", ine=INE)
    ada = parent("Ada", "Roux", lou, email=email)
    out = await feed(worker, a, MATERNELLE, 1, created=[lou, ada])
    made = {v.profile: v.account_id for v in one(out, topics.ACCOUNTS_CREATED).accounts}
    return ada, made["relative"], made["student"]


async def sister_in_b(
    worker: AccountManager, b: FedSchool, email: str | None
) -> tuple[list[Envelope[Any]], UUID]:
    """Lou's sister Zoé in B's CP, with her mother as B's export gives her."""
    zoe = pupil("Zoé", "Roux", date(2019, 2, 1), "CP")
    ada = parent("Ada", "Roux", zoe, email=email)
    out = await feed(worker, b, ELEMENTAIRE, 1, created=[zoe, ada])
    [zoe_id] = [a for a, r in worker.store.accounts.items() if r.first_name == "Zoé"]
    return out, zoe_id


def relatives(worker: AccountManager) -> list[UUID]:
    return [a for a, r in worker.store.accounts.items() if r.profile == "relative"]


def duplicates_recorded(worker: AccountManager) -> list[tuple[UUID, UUID | None]]:
    """The possible duplicates the runs recorded for their reports: (new account, other)."""
    rows = worker.store.run_findings_rows.items()
    return [(a, other) for (_, _, kind, a), other in rows if kind == "possible_duplicate"]


def chunk_counts(logs: list[dict[str, Any]]) -> list[int]:
    return [e["possible_duplicates"] for e in logs if e["event"] == "feed_chunk_applied"]


async def test_a_parent_with_a_child_in_each_school_is_one_account_linked_to_both(worker):
    a, b = await two_schools(worker)
    _, ada_id, lou_id = await family_in_a(worker, a)
    login = worker.store.accounts[ada_id].login
    # B's export writes her email otherwise: the same once trimmed and case folded.
    out, zoe_id = await sister_in_b(worker, b, "  Ada.Roux@Example.ORG ")

    assert relatives(worker) == [ada_id]
    [made] = one(out, topics.ACCOUNTS_CREATED).accounts
    assert made.account_id == zoe_id  # only the sister is new
    attached = one(out, topics.ACCOUNTS_ATTACHED)
    [view] = attached.accounts
    assert (attached.school_id, view.account_id, view.login) == (b.school_id, ada_id, login)
    assert sorted(view.children) == sorted([lou_id, zoe_id])  # the whole account
    assert sorted(view.classes) == ["CP", "GS"]
    assert (ada_id, b.school_id) in worker.store.account_schools
    assert worker.store.accounts[ada_id].school_id == a.school_id
    assert {c for p, c in worker.store.parent_children if p == ada_id} == {lou_id, zoe_id}
    # The identity was locked before it was looked for (§4).
    assert ["parent:ada\x1froux\x1fada.roux@example.org"] in worker.store.identities_locked
    # A's next night with Ada in it: her child in B stays.
    again = await feed(
        worker, a, MATERNELLE, 2, updated=[parent("Ada", "Roux", feed_id=_feed_id(worker, ada_id))]
    )
    assert again is not None
    assert {c for p, c in worker.store.parent_children if p == ada_id} == {zoe_id}


def _feed_id(worker: AccountManager, account_id: UUID) -> UUID:
    feed_id = worker.store.accounts[account_id].feed_id
    assert feed_id is not None
    return feed_id


async def test_a_homonym_parent_without_email_stays_two_accounts_with_a_warning(worker):
    a, b = await two_schools(worker)
    _, ada_id, _ = await family_in_a(worker, a, email=None)
    with capture_logs() as logs:
        out, _ = await sister_in_b(worker, b, None)
    assert topics.ACCOUNTS_ATTACHED not in types(out)
    [other] = [v.account_id for v in one(out, topics.ACCOUNTS_CREATED).accounts if v.children]
    assert sorted(relatives(worker)) == sorted([ada_id, other])
    assert duplicates_recorded(worker) == [(other, ada_id)]
    assert chunk_counts(logs) == [1]
    assert "Ada" not in str(logs) and "Roux" not in str(logs)  # no name in the logs


async def test_a_parent_with_another_email_is_another_account(worker):
    a, b = await two_schools(worker)
    await family_in_a(worker, a)
    with capture_logs() as logs:
        out, _ = await sister_in_b(worker, b, "ada@elsewhere.org")
    assert topics.ACCOUNTS_ATTACHED not in types(out)
    assert len(relatives(worker)) == 2 and not worker.store.account_schools
    assert chunk_counts(logs) == [1]


async def test_a_parent_without_email_in_one_export_is_another_account(worker):
    a, b = await two_schools(worker)
    await family_in_a(worker, a)
    out, _ = await sister_in_b(worker, b, None)
    assert topics.ACCOUNTS_ATTACHED not in types(out)
    assert len(relatives(worker)) == 2


async def test_a_teacher_of_two_schools_is_never_merged_by_the_feed(worker):
    a, b = await two_schools(worker)
    await feed(worker, a, MATERNELLE, 1, created=[teacher("Ada", "Roux", "GS", email=EMAIL)])
    with capture_logs() as logs:
        out = await feed(
            worker, b, ELEMENTAIRE, 1, created=[teacher("Ada", "Roux", "CP", email=EMAIL)]
        )
    assert topics.ACCOUNTS_ATTACHED not in types(out)
    assert len([r for r in worker.store.accounts.values() if r.profile == "teacher"]) == 2
    assert chunk_counts(logs) == [0]


async def test_a_parent_account_made_by_command_is_never_merged(worker):
    a, b = await two_schools(worker)
    by_hand = domain.new_account(
        a.school_id,
        "relative",
        "Ada",
        "Roux",
        email=EMAIL,
        birth_date=None,
        expires_at=worker.now,
    )
    await worker.store.add_accounts_as([by_hand], ["ada.roux"])
    out, _ = await sister_in_b(worker, b, EMAIL)
    assert topics.ACCOUNTS_ATTACHED not in types(out)
    assert len(relatives(worker)) == 2 and not worker.store.account_schools
    [(_, other)] = duplicates_recorded(worker)  # still a possible duplicate
    assert other == by_hand.account_id


async def test_a_parent_let_go_by_his_school_is_taken_back_by_another_in_grace(worker):
    a, b = await two_schools(worker)
    ada, ada_id, _ = await family_in_a(worker, a)
    activated = {"account_id": str(ada_id), "activated_at": "2026-09-05T08:00:00Z"}
    await worker.send(topics.ACCOUNT_ACTIVATED, activated)
    await feed(worker, a, MATERNELLE, 2, left=[ada.feed_id])
    assert worker.store.accounts[ada_id].deactivated_at is not None
    worker.now += timedelta(days=30)
    out, _ = await sister_in_b(worker, b, EMAIL)
    [view] = one(out, topics.ACCOUNTS_ATTACHED).accounts
    assert view.account_id == ada_id
    stored = worker.store.accounts[ada_id]
    assert (stored.school_id, stored.deactivated_at) == (b.school_id, None)
    assert stored.activated_at is not None


# The run's report (directory.sync.applied) ------------------------------------------


async def test_a_run_applied_whole_reports_its_attached_persons_and_possible_duplicates(worker):
    """Two chunks of B's run: one attaches Lou (by INE) and Ada (names and email), the
    other makes a second Paul Roux (no email); the report comes with the last chunk only,
    summing both, and names B's own Paul only."""
    a, b = await two_schools(worker)
    _, ada_id, lou_id = await family_in_a(worker, a)
    paul_a = parent("Paul", "Roux", pupil("Léo", "Roux", BORN, "GS"), email=None)
    await feed(worker, a, MATERNELLE, 2, created=[paul_a.model_copy(update={"children": []})])
    run = uuid.uuid4()
    lou_b = arriving(pupil("Lou", "Roux", BORN, "GS", ine=INE))
    ada_b = parent("Ada", "Roux", lou_b, email=EMAIL)
    tom = pupil("Tom", "Roux", date(2018, 3, 3), "CP")
    paul_b = parent("Paul", "Roux", tom, email=None)

    first = await worker.send_chunk(
        chunk(b, run, 0, 2, ELEMENTAIRE, version=1, created=[lou_b, ada_b])
    )
    assert topics.DIRECTORY_SYNC_APPLIED not in types(first)
    last = await worker.send_chunk(
        chunk(b, run, 1, 2, ELEMENTAIRE, version=1, created=[tom, paul_b])
    )

    applied = one(last, topics.DIRECTORY_SYNC_APPLIED)
    assert (applied.school_id, applied.run_id, applied.version) == (b.school_id, run, 1)
    assert (applied.counts.attached, applied.counts.possible_duplicates) == (2, 1)
    [warning] = applied.warnings
    assert "possible duplicate: parent Paul Roux" in warning.message
    assert "École 1" not in warning.message and str(ada_id) not in warning.message
    assert types(last)[-1] == topics.DIRECTORY_SYNC_APPLIED  # after the chunk's own events
    assert {(lou_id, b.school_id), (ada_id, b.school_id)} <= set(worker.store.account_schools)


async def test_a_run_with_nobody_from_another_school_reports_zero(worker):
    a, _ = await two_schools(worker)
    out = await feed(worker, a, MATERNELLE, 1, created=[pupil("Lou", "Roux", BORN, "GS")])
    applied = one(out, topics.DIRECTORY_SYNC_APPLIED)
    assert (applied.counts.attached, applied.counts.possible_duplicates) == (0, 0)
    assert applied.warnings == []
    assert worker.store.run_findings_rows == {}  # nothing written for it


async def test_a_gs_pupil_s_parents_follow_him_to_his_new_school(worker):
    """At A's turnover Lou and his mother Ada (never activated, with an email) are kept;
    his father Léon (no email: nobody could find him) goes. In B's September, Ada is the
    same account, re-homed with Lou, both with a new code."""
    a, b = await two_schools(worker)
    ada, ada_id, lou_id = await family_in_a(worker, a)
    lou_feed = worker.store.accounts[lou_id].feed_id
    assert lou_feed is not None
    lou = pupil("Lou", "Roux", BORN, "GS", ine=INE, feed_id=lou_feed)
    leon = parent("Léon", "Roux", lou)
    await feed(worker, a, MATERNELLE, 2, created=[leon])
    [leon_id] = [i for i, r in worker.store.accounts.items() if r.first_name == "Léon"]
    ada_login = worker.store.accounts[ada_id].login

    june = await feed(
        worker, a, MATERNELLE, 3, left=[lou.feed_id, ada.feed_id, leon.feed_id], turnover=True
    )
    assert sorted(v.account_id for v in one(june, topics.ACCOUNTS_DEACTIVATED).accounts) == sorted(
        [ada_id, lou_id]
    )
    assert [v.account_id for v in one(june, topics.ACCOUNTS_DELETED).accounts] == [leon_id]

    lou_b = arriving(lou)
    ada_b = parent("Ada", "Roux", lou_b, email=EMAIL)
    september = await feed(worker, b, ELEMENTAIRE, 1, created=[lou_b, ada_b])
    assert topics.ACCOUNTS_CREATED not in types(september)
    attached = {v.account_id: v for v in one(september, topics.ACCOUNTS_ATTACHED).accounts}
    assert set(attached) == {ada_id, lou_id}
    assert attached[ada_id].login == ada_login and attached[ada_id].children == [lou_id]
    renewed = [e.data for e in september if e.type == topics.ACTIVATION_CODE_RENEWED]
    assert sorted(r.account_id for r in renewed) == sorted([ada_id, lou_id])
    for r in renewed:
        assert worker.store.accounts[r.account_id].activation_code == r.activation_code
        assert worker.store.accounts[r.account_id].school_id == b.school_id
