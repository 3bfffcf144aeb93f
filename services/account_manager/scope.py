"""Pure decisions on commands: who may do what, and what in a command is wrong.

An administrator acts on his school; a teacher on the classes he is attached to (pupils
and parents of those classes, renaming them). Every check returns reasons field by field;
an empty list means the command may be applied.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from services.account_manager.domain import fold_name_part
from shared.contracts.commands import (
    AccountsCreateRequested,
    AccountToCreate,
    ClassTeachersAssignRequested,
)
from shared.contracts.common import Reason


@dataclass(frozen=True)
class Requester:
    account_id: UUID
    school_id: UUID
    profile: str
    class_ids: frozenset[UUID]  # the classes he is attached to as a teacher

    @property
    def is_admin(self) -> bool:
        return self.profile == "administrator"


@dataclass(frozen=True)
class ClassRow:
    class_id: UUID
    school_id: UUID
    name: str


@dataclass(frozen=True)
class AccountRow:
    account_id: UUID
    school_id: UUID  # his home school
    profile: str
    class_ids: frozenset[UUID]  # live classes only: archived ones are out of every scope
    activated: bool
    active: bool = True  # not deactivated (a leaver of the feed)
    # The schools he is attached to besides his home (docs/one-person-across-schools.md
    # §2): he is theirs as much as his home's.
    attached_to: frozenset[UUID] = frozenset()
    # The school of each of ``class_ids``; a class it does not name is his home's.
    class_schools: Mapping[UUID, UUID] = dataclasses.field(default_factory=dict)

    def is_in(self, school_id: UUID) -> bool:
        return school_id == self.school_id or school_id in self.attached_to

    def classes_in(self, school_id: UUID) -> frozenset[UUID]:
        """His classes of that school (those of his other schools are theirs)."""
        return frozenset(
            c for c in self.class_ids if self.class_schools.get(c, self.school_id) == school_id
        )


def _no(field: str, message: str) -> list[Reason]:
    return [Reason(field=field, message=message)]


def check_requester(requester: Requester | None, school_id: UUID) -> list[Reason]:
    if requester is None:
        return _no("requested_by", "unknown account")
    if requester.school_id != school_id:
        return _no("requested_by", "this account belongs to another school")
    if requester.profile not in ("administrator", "teacher"):
        return _no("requested_by", f"a {requester.profile} account cannot do this")
    return []


def check_create(
    command: AccountsCreateRequested,
    requester: Requester | None,
    classes: Mapping[UUID, ClassRow],
    existing_children: Mapping[UUID, AccountRow],
) -> list[Reason]:
    """``classes`` are the school's classes; ``existing_children`` the accounts named as
    children by id (whatever their school: checked here)."""
    reasons = check_requester(requester, command.school_id)
    if reasons or requester is None:
        return reasons
    refs = {a.ref: a for a in command.accounts if a.ref}
    if len(refs) != len([a for a in command.accounts if a.ref]):
        reasons += _no("accounts", "two accounts of the request share the same ref")
    for index, account in enumerate(command.accounts):
        reasons += _check_account(
            f"accounts.{index}", account, requester, classes, refs, existing_children
        )
    return reasons


def _check_account(
    field: str,
    account: AccountToCreate,
    requester: Requester,
    classes: Mapping[UUID, ClassRow],
    refs: Mapping[str, AccountToCreate],
    existing_children: Mapping[UUID, AccountRow],
) -> list[Reason]:
    reasons: list[Reason] = []
    for part in ("first_name", "last_name"):
        if not fold_name_part(getattr(account, part)):
            reasons += _no(f"{field}.{part}", "has no letter or digit to make a login of")
    if not requester.is_admin and account.profile not in ("student", "relative"):
        reasons += _no(
            f"{field}.profile", "a teacher creates pupils and parents; ask the administrator"
        )
    if account.profile == "student" and account.birth_date is None:
        reasons += _no(f"{field}.birth_date", "a pupil always has a birth date")
    if account.profile == "student" and not requester.is_admin and not account.class_ids:
        reasons += _no(f"{field}.class_ids", "a pupil created by a teacher goes in his class")
    for i, class_id in enumerate(account.class_ids):
        klass = classes.get(class_id)
        if klass is None:
            reasons += _no(f"{field}.class_ids.{i}", f"unknown class {class_id} in this school")
        elif not requester.is_admin and class_id not in requester.class_ids:
            reasons += _no(f"{field}.class_ids.{i}", f"{klass.name} is not one of your classes")
    if account.profile == "relative":
        reasons += _check_children(field, account, requester, refs, existing_children)
    elif account.children:
        reasons += _no(f"{field}.children", "only a parent has children")
    return reasons


def _check_children(
    field: str,
    account: AccountToCreate,
    requester: Requester,
    refs: Mapping[str, AccountToCreate],
    existing: Mapping[UUID, AccountRow],
) -> list[Reason]:
    if not account.children:
        return _no(f"{field}.children", "a parent is created with at least one child")
    reasons: list[Reason] = []
    for i, child in enumerate(account.children):
        where = f"{field}.children.{i}"
        if child in refs:
            if refs[child].profile != "student":
                reasons += _no(where, f"{child} is not a pupil")
            continue
        child_id = _uuid(child)
        row = existing.get(child_id) if child_id else None
        if row is None or not row.is_in(requester.school_id):
            reasons += _no(where, f"unknown pupil {child} in this school")
        elif row.profile != "student":
            reasons += _no(where, f"{child} is not a pupil")
        elif not requester.is_admin and not (row.class_ids & requester.class_ids):
            reasons += _no(where, "this pupil is not in one of your classes")
    return reasons


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def check_class_command(
    requester: Requester | None, klass: ClassRow | None, class_id: UUID, *, teacher_may: bool
) -> list[Reason]:
    if klass is None:
        return _no("class_id", f"unknown class {class_id}")
    reasons = check_requester(requester, klass.school_id)
    if reasons or requester is None:
        return reasons
    if requester.is_admin:
        return []
    if not teacher_may:
        return _no("requested_by", "only the school's administrator can do this")
    if klass.class_id not in requester.class_ids:
        return _no("requested_by", f"{klass.name} is not one of your classes")
    return []


def check_assign(
    command: ClassTeachersAssignRequested, klass: ClassRow, teachers: Mapping[UUID, AccountRow]
) -> list[Reason]:
    reasons: list[Reason] = []
    named = [("add", command.add), ("remove", command.remove), ("set", command.set_to or [])]
    for field, ids in named:
        for i, account_id in enumerate(ids):
            row = teachers.get(account_id)
            if row is None or not row.is_in(klass.school_id):
                reasons += _no(f"{field}.{i}", f"unknown account {account_id} in this school")
            elif row.profile != "teacher":
                reasons += _no(f"{field}.{i}", f"a {row.profile} cannot teach a class")
    return reasons


def teachers_after(current: set[UUID], command: ClassTeachersAssignRequested) -> list[UUID]:
    if command.set_to is not None:
        return sorted(set(command.set_to), key=str)
    return sorted((current | set(command.add)) - set(command.remove), key=str)


def check_renew(
    requester: Requester | None, account: AccountRow | None, account_id: UUID
) -> list[Reason]:
    if account is None:
        return _no("account_id", f"unknown account {account_id}")
    # Any of his schools' administrators, and their teachers of his classes, may renew it
    # (the code is the account's: renewed here, it is void everywhere).
    school_id = account.school_id
    if requester is not None and account.is_in(requester.school_id):
        school_id = requester.school_id
    reasons = check_requester(requester, school_id)
    if reasons or requester is None:
        return reasons
    if account.activated:
        return _no("account_id", "this account is already activated: it has no code any more")
    if requester.is_admin:
        return []
    if account.profile not in ("student", "relative") or not (
        account.class_ids & requester.class_ids
    ):
        return _no("requested_by", "this account is not a pupil or parent of your classes")
    return []


def class_name_taken(name: str, other_names: list[str]) -> list[Reason]:
    folded = " ".join(name.split()).casefold()
    if any(" ".join(n.split()).casefold() == folded for n in other_names):
        return _no("name", f"another class of the school is already named {name!r}")
    return []


YEAR_CLOSE_INTERVAL_DAYS = 60  # a school year cannot close twice within this


def check_year_close(
    requester: Requester | None,
    school_id: UUID,
    provisioning: str | None,
    last_closed: date | None,
    today: date,
) -> list[Reason]:
    """Only the school's administrator closes its year, and only a school whose classes
    are made by hand: a fed school's year turns with its September export. ``provisioning``
    is None for an unknown school."""
    if provisioning is None:
        return _no("school_id", f"unknown school {school_id}")
    reasons = check_requester(requester, school_id)
    if reasons or requester is None:
        return reasons
    if not requester.is_admin:
        return _no("requested_by", "only the school's administrator can do this")
    if provisioning == "automatic":
        return _no(
            "school_id",
            "this school's classes come from ONDE: its year turns over with its September export",
        )
    if last_closed is not None and (today - last_closed).days < YEAR_CLOSE_INTERVAL_DAYS:
        return _no("school_id", f"the school year was already closed on {last_closed:%d/%m/%Y}")
    return []


def check_place(
    requester: Requester | None,
    klass: ClassRow | None,
    class_id: UUID,
    pupil_ids: list[UUID],
    pupils: Mapping[UUID, AccountRow],
) -> list[Reason]:
    """A teacher places pupils of his school who have no class into one of his classes;
    the administrator into any class. A pupil already in a class stays there."""
    reasons = check_class_command(requester, klass, class_id, teacher_may=True)
    if reasons or klass is None:
        return reasons
    for i, pupil_id in enumerate(pupil_ids):
        row = pupils.get(pupil_id)
        where = f"pupils.{i}"
        if row is None or not row.is_in(klass.school_id) or not row.active:
            reasons += _no(where, f"unknown pupil {pupil_id} in this school")
        elif row.profile != "student":
            reasons += _no(where, f"{pupil_id} is not a pupil")
        elif klass.class_id in row.class_ids:
            reasons += _no(where, f"this pupil is already in {klass.name}")
        elif row.classes_in(klass.school_id):  # his class in another school is that school's
            reasons += _no(where, "this pupil is already in another class")
    return reasons
