"""Pure scope and validation decisions of account_manager's commands."""

import uuid
from datetime import date

from services.account_manager import scope
from shared.contracts.commands import AccountsCreateRequested, ClassTeachersAssignRequested

SCHOOL, OTHER_SCHOOL = uuid.uuid4(), uuid.uuid4()
CLASS_A, CLASS_B = uuid.uuid4(), uuid.uuid4()
CLASSES = {
    CLASS_A: scope.ClassRow(CLASS_A, SCHOOL, "CP A"),
    CLASS_B: scope.ClassRow(CLASS_B, SCHOOL, "CE1"),
}
ADMIN = scope.Requester(uuid.uuid4(), SCHOOL, "administrator", frozenset())
TEACHER = scope.Requester(uuid.uuid4(), SCHOOL, "teacher", frozenset({CLASS_A}))


def create(*accounts: dict) -> AccountsCreateRequested:
    return AccountsCreateRequested(
        request_id="r", requested_by=ADMIN.account_id, school_id=SCHOOL, accounts=list(accounts)
    )


def fields(reasons) -> set[str]:
    return {r.field for r in reasons}


def pupil(**extra) -> dict:
    return {
        "profile": "student",
        "first_name": "Zoé",
        "last_name": "Lefèvre",
        "birth_date": date(2018, 3, 14),
        **extra,
    }


def test_requester_must_be_admin_or_teacher_of_the_school():
    parent = scope.Requester(uuid.uuid4(), SCHOOL, "relative", frozenset())
    assert fields(scope.check_requester(None, SCHOOL)) == {"requested_by"}
    assert fields(scope.check_requester(ADMIN, OTHER_SCHOOL)) == {"requested_by"}
    assert fields(scope.check_requester(parent, SCHOOL)) == {"requested_by"}
    assert scope.check_requester(TEACHER, SCHOOL) == []


def test_teacher_creates_pupils_of_his_classes_only():
    ok = create(pupil(class_ids=[CLASS_A]))
    assert scope.check_create(ok, TEACHER, CLASSES, {}) == []
    other = create(pupil(class_ids=[CLASS_B]))
    assert fields(scope.check_create(other, TEACHER, CLASSES, {})) == {"accounts.0.class_ids.0"}
    nowhere = create(pupil())
    assert fields(scope.check_create(nowhere, TEACHER, CLASSES, {})) == {"accounts.0.class_ids"}
    assert scope.check_create(nowhere, ADMIN, CLASSES, {}) == []


def test_parent_children_by_ref_or_existing_pupil_of_the_teachers_class():
    mine = scope.AccountRow(uuid.uuid4(), SCHOOL, "student", frozenset({CLASS_A}), False)
    theirs = scope.AccountRow(uuid.uuid4(), SCHOOL, "student", frozenset({CLASS_B}), False)
    command = create(
        pupil(ref="z", class_ids=[CLASS_A]),
        {
            "profile": "relative",
            "first_name": "Luc",
            "last_name": "Roy",
            "children": ["z", str(mine.account_id), str(theirs.account_id)],
        },
    )
    known = {mine.account_id: mine, theirs.account_id: theirs}
    assert fields(scope.check_create(command, TEACHER, CLASSES, known)) == {"accounts.1.children.2"}
    assert scope.check_create(command, ADMIN, CLASSES, known) == []


def test_teachers_after_add_remove_or_set():
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    change = ClassTeachersAssignRequested(
        request_id="r", requested_by=ADMIN.account_id, class_id=CLASS_A, add=[c], remove=[a]
    )
    assert set(scope.teachers_after({a, b}, change)) == {b, c}
    replace = ClassTeachersAssignRequested.model_validate(
        {
            "request_id": "r",
            "requested_by": str(ADMIN.account_id),
            "class_id": str(CLASS_A),
            "set": [str(a)],
        }
    )
    assert scope.teachers_after({b, c}, replace) == [a]


def test_renewal_scope():
    pupil_a = scope.AccountRow(uuid.uuid4(), SCHOOL, "student", frozenset({CLASS_A}), False)
    pupil_b = scope.AccountRow(uuid.uuid4(), SCHOOL, "student", frozenset({CLASS_B}), False)
    activated = scope.AccountRow(uuid.uuid4(), SCHOOL, "student", frozenset({CLASS_A}), True)
    assert scope.check_renew(TEACHER, pupil_a, pupil_a.account_id) == []
    assert fields(scope.check_renew(TEACHER, pupil_b, pupil_b.account_id)) == {"requested_by"}
    assert fields(scope.check_renew(ADMIN, activated, activated.account_id)) == {"account_id"}
    assert fields(scope.check_renew(ADMIN, None, uuid.uuid4())) == {"account_id"}


def test_class_names_unique_whatever_the_case_and_spaces():
    assert fields(scope.class_name_taken("cp  a", ["CP A", "CE1"])) == {"name"}
    assert scope.class_name_taken("CP B", ["CP A", "CE1"]) == []


def test_a_year_closes_by_its_manual_school_s_administrator_once_in_sixty_days():
    today = date(2027, 7, 6)

    def close(requester, provisioning="manual", last=None):
        return fields(scope.check_year_close(requester, SCHOOL, provisioning, last, today))

    assert close(ADMIN) == set()
    assert close(ADMIN, last=date(2026, 7, 4)) == set()  # last year's close
    assert close(ADMIN, last=date(2027, 6, 1)) == {"school_id"}
    assert close(ADMIN, provisioning="automatic") == {"school_id"}
    assert close(ADMIN, provisioning=None) == {"school_id"}
    assert close(TEACHER) == {"requested_by"}
    other_admin = scope.Requester(uuid.uuid4(), OTHER_SCHOOL, "administrator", frozenset())
    assert close(other_admin) == {"requested_by"}


def test_a_teacher_places_classless_pupils_of_his_school_into_his_class():
    def row(school=SCHOOL, profile="student", classes=(), active=True):
        return scope.AccountRow(uuid.uuid4(), school, profile, frozenset(classes), False, active)

    free, placed, elsewhere = row(), row(classes=[CLASS_A]), row(classes=[CLASS_B])
    stranger, parent, gone = row(school=OTHER_SCHOOL), row(profile="relative"), row(active=False)
    rows = {r.account_id: r for r in (free, placed, elsewhere, stranger, parent, gone)}

    def place(requester, klass, *pupils):
        ids = [p.account_id for p in pupils]
        return scope.check_place(requester, CLASSES.get(klass), klass, ids, rows)

    assert place(TEACHER, CLASS_A, free) == []
    assert place(ADMIN, CLASS_B, free) == []
    assert fields(place(TEACHER, CLASS_B, free)) == {"requested_by"}
    refused = place(TEACHER, CLASS_A, free, placed, elsewhere, stranger, parent, gone)
    assert fields(refused) == {f"pupils.{i}" for i in range(1, 6)}
    assert fields(place(TEACHER, uuid.uuid4(), free)) == {"class_id"}
