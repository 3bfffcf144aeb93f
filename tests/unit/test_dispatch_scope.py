"""credential_dispatch's pure decisions: who may hand out which sheets, and to whom they go."""

from dataclasses import replace
from uuid import UUID, uuid4

from services.credential_dispatch import domain
from services.credential_dispatch.model import Printed, Requester, Selected
from shared.contracts.commands import (
    CredentialsDispatchRequested,
    CredentialsDocumentSendRequested,
    DispatchFilter,
)

SCHOOL, OTHER_SCHOOL = uuid4(), uuid4()
CLASS_A, CLASS_B = uuid4(), uuid4()


def person(profile: str, *classes: UUID, school: UUID = SCHOOL) -> Selected:
    return Selected(uuid4(), school, profile, frozenset(classes))


def requester(profile: str, *classes: UUID, school: UUID = SCHOOL) -> Requester:
    return Requester(uuid4(), school, profile, f"{profile}@example.org", frozenset(classes))


def by_ids(who: Requester, selected: list[Selected]) -> CredentialsDispatchRequested:
    return CredentialsDispatchRequested(
        request_id="r-1",
        requested_by=who.account_id,
        school_id=SCHOOL,
        account_ids=[s.account_id for s in selected],
        channel="print",
    )


def by_class(who: Requester, class_id: UUID | None) -> CredentialsDispatchRequested:
    return CredentialsDispatchRequested(
        request_id="r-2",
        requested_by=who.account_id,
        school_id=SCHOOL,
        filter=DispatchFilter(class_id=class_id),
        channel="email",
    )


def fields(reasons: list) -> list[str]:
    return [r.field for r in reasons]


def test_an_administrator_hands_out_any_sheet_of_his_school():
    admin = requester("administrator")
    chosen = [person("student", CLASS_A), person("teacher"), person("relative", CLASS_B)]
    assert domain.check_dispatch(by_ids(admin, chosen), admin, chosen, None) == []


def test_a_teacher_hands_out_his_classes_pupils_and_parents_and_his_own():
    teacher = requester("teacher", CLASS_A)
    own = Selected(teacher.account_id, SCHOOL, "teacher", frozenset({CLASS_A}))
    allowed = [person("student", CLASS_A), person("relative", CLASS_A), own]
    assert domain.check_dispatch(by_ids(teacher, allowed), teacher, allowed, None) == []
    refused = [person("student", CLASS_B), person("teacher", CLASS_A)]
    reasons = domain.check_dispatch(by_ids(teacher, refused), teacher, refused, None)
    assert fields(reasons) == ["account_ids.0", "account_ids.1"]


def test_a_teacher_filters_by_one_of_his_classes():
    teacher = requester("teacher", CLASS_A)
    pupil = [person("student", CLASS_A)]
    assert domain.check_dispatch(by_class(teacher, CLASS_A), teacher, pupil, SCHOOL) == []
    reasons = domain.check_dispatch(by_class(teacher, CLASS_B), teacher, pupil, SCHOOL)
    assert [r.message for r in reasons] == ["not one of your classes"]
    reasons = domain.check_dispatch(by_class(teacher, None), teacher, pupil, None)
    assert fields(reasons) == ["filter.class_id"]


def test_a_teacher_s_class_filter_never_picks_his_co_teachers():
    """A class holds its teachers too: a teacher printing it gets his pupils, their parents
    and himself, never a co-teacher's sheet (and code); the administrator gets them all."""
    teacher = requester("teacher", CLASS_A)
    himself = Selected(teacher.account_id, SCHOOL, "teacher", frozenset({CLASS_A}))
    pupil, parent = person("student", CLASS_A), person("relative", CLASS_A)
    co_teacher, personnel = person("teacher", CLASS_A), person("personnel", CLASS_A)
    in_class = [pupil, parent, himself, co_teacher, personnel]
    assert domain.within_scope(teacher, in_class) == [pupil, parent, himself]
    assert domain.within_scope(requester("administrator"), in_class) == in_class
    # Nothing left to hand out: refused as no match, not handed out.
    reasons = domain.check_dispatch(
        by_class(teacher, CLASS_A), teacher, domain.within_scope(teacher, [co_teacher]), SCHOOL
    )
    assert [r.message for r in reasons] == ["no account matches this request"]


def test_a_document_is_sent_again_within_the_requester_s_scope_of_now():
    teacher = requester("teacher", CLASS_A)
    pupil_a, pupil_b = person("student", CLASS_A), person("student", CLASS_B)
    printed = Printed(uuid4(), SCHOOL, teacher.account_id, "compact", [pupil_a.account_id])
    command = send_again(teacher, printed.document_id)
    assert domain.check_document_send(command, teacher, printed, [pupil_a]) == []
    # Since he printed it, the pupil moved to a class that is not his.
    moved = Selected(pupil_a.account_id, SCHOOL, "student", frozenset({CLASS_B}))
    reasons = domain.check_document_send(command, teacher, printed, [moved, pupil_b])
    assert [r.message for r in reasons] == [
        "this document holds sheets of accounts no longer in your classes"
    ]
    admin = requester("administrator")
    assert (
        domain.check_document_send(send_again(admin, printed.document_id), admin, printed, [moved])
        == []
    )


def test_accounts_and_classes_of_another_school_are_unknown():
    admin = requester("administrator")
    stranger = [person("student", school=OTHER_SCHOOL)]
    assert fields(domain.check_dispatch(by_ids(admin, stranger), admin, stranger, None)) == [
        "account_ids.0"
    ]
    reasons = domain.check_dispatch(by_class(admin, CLASS_A), admin, [], OTHER_SCHOOL)
    assert [r.message for r in reasons] == ["unknown class in this school"]


def test_an_account_in_several_schools_is_in_each_of_them():
    """A request for a school admits the accounts whose home it is and those attached to
    it, as requester and as selected; a third school has neither."""
    admin = requester("administrator")
    from_elsewhere = replace(
        person("student", CLASS_A, school=OTHER_SCHOOL), attached_to=frozenset({SCHOOL})
    )
    assert (
        domain.check_dispatch(by_ids(admin, [from_elsewhere]), admin, [from_elsewhere], None) == []
    )
    teacher = replace(
        requester("teacher", CLASS_A, school=OTHER_SCHOOL), attached_to=frozenset({SCHOOL})
    )
    command = by_ids(teacher, [from_elsewhere])
    assert domain.check_dispatch(command, teacher, [from_elsewhere], None) == []
    printed = Printed(uuid4(), SCHOOL, teacher.account_id, "compact", [from_elsewhere.account_id])
    assert (
        domain.check_document_send(
            send_again(teacher, printed.document_id), teacher, printed, [from_elsewhere]
        )
        == []
    )
    third = uuid4()
    elsewhere_only = replace(from_elsewhere, attached_to=frozenset({third}))
    reasons = domain.check_dispatch(by_ids(admin, [elsewhere_only]), admin, [elsewhere_only], None)
    assert fields(reasons) == ["account_ids.0"]
    outsider = replace(teacher, attached_to=frozenset({third}))
    reasons = domain.check_dispatch(command, outsider, [from_elsewhere], None)
    assert [r.message for r in reasons] == ["this account belongs to another school"]
    reasons = domain.check_document_send(
        send_again(outsider, printed.document_id), outsider, printed, [from_elsewhere]
    )
    assert [r.message for r in reasons] == ["this account belongs to another school"]


def test_pupils_parents_and_strangers_hand_out_nothing():
    for who in (requester("student"), requester("relative"), requester("personnel")):
        assert fields(domain.check_dispatch(by_class(who, None), who, [], None)) == ["requested_by"]
    outsider = requester("administrator", school=OTHER_SCHOOL)
    reasons = domain.check_dispatch(by_class(outsider, None), outsider, [], None)
    assert [r.message for r in reasons] == ["this account belongs to another school"]


def test_a_pupils_sheet_goes_to_each_parent_with_an_address():
    pupil, orphan, teacher = person("student"), person("student"), person("teacher")
    mother, father = uuid4(), uuid4()
    plan = domain.email_recipients(
        [pupil, orphan, teacher],
        {pupil.account_id: [(mother, "mere@example.org"), (father, None)]},
        {teacher.account_id: None},
    )
    assert plan == [
        (pupil.account_id, "mere@example.org", None),
        (orphan.account_id, None, "no parent with an email address"),
        (teacher.account_id, None, "no email address"),
    ]


def send_again(who: Requester, document_id: UUID) -> CredentialsDocumentSendRequested:
    return CredentialsDocumentSendRequested(
        request_id="r-3", requested_by=who.account_id, school_id=SCHOOL, document_id=document_id
    )


def test_a_stored_document_goes_again_to_its_requester_or_the_administrator():
    teacher, colleague, admin = (
        requester("teacher"),
        requester("teacher"),
        requester("administrator"),
    )
    printed = Printed(uuid4(), SCHOOL, teacher.account_id, "compact", [])
    assert (
        domain.check_document_send(send_again(teacher, printed.document_id), teacher, printed, [])
        == []
    )
    assert (
        domain.check_document_send(send_again(admin, printed.document_id), admin, printed, []) == []
    )
    reasons = domain.check_document_send(
        send_again(colleague, printed.document_id), colleague, printed, []
    )
    assert fields(reasons) == ["requested_by"]


def test_another_schools_document_looks_unknown():
    admin = requester("administrator")
    theirs = Printed(uuid4(), OTHER_SCHOOL, uuid4(), "detailed", [])
    for printed in (theirs, None):
        reasons = domain.check_document_send(
            send_again(admin, theirs.document_id), admin, printed, []
        )
        assert [r.message for r in reasons] == ["unknown document in this school"]
