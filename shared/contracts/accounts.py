"""Step 2: classes and accounts (account_manager's events)."""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from shared import topics
from shared.contracts.common import Model
from shared.envelope import Contract

Profile = Literal["administrator", "teacher", "personnel", "student", "relative"]


class Account(Model):
    """An account as every event tells it: the whole account, its classes and children in
    every school it is in (an account may be in several: ``accounts.attached``), whichever
    school's event carries it. A reader that keeps one school's view filters by the
    classes' school."""

    account_id: UUID
    profile: Profile
    first_name: str
    last_name: str
    login: str
    email: str | None = None
    birth_date: date | None = None
    classes: list[str] = Field(default_factory=list)
    class_ids: list[UUID] = Field(default_factory=list)
    children: list[UUID] = Field(default_factory=list)


class CreatedAccount(Account):
    activation_code: str
    activation_expires_at: datetime


class AccountsCreated(Contract):
    topic = topics.ACCOUNTS_CREATED

    school_id: UUID
    uai: str | None = None
    school_name: str | None = None
    provisioning: Literal["automatic", "manual"] | None = None
    accounts: list[CreatedAccount]


class ClassInfo(Model):
    class_id: UUID
    name: str
    level: str | None = None


class ClassesCreated(Contract):
    topic = topics.CLASSES_CREATED

    school_id: UUID
    classes: list[ClassInfo]


class ArchivedClass(Model):
    class_id: UUID
    name: str


class ClassesArchived(Contract):
    """Classes a school no longer has (its export stopped naming them, or its year closed):
    kept, with their history, for the grace period, but gone from scopes and prints; their
    teachers are detached (class.teachers.assigned with no teacher)."""

    topic = topics.CLASSES_ARCHIVED

    school_id: UUID
    classes: list[ArchivedClass]


class SchoolYearTurned(Contract):
    """A school's new year is in place (its turnover run applied whole, or its year closed
    by its administrator, then the outcome of his request): the classes that have no
    teacher yet, for the administrator to
    attach them ("l'administrateur doit à présent rattacher les enseignants à leurs
    classes")."""

    topic = topics.SCHOOL_YEAR_TURNED

    school_id: UUID
    classes: list[ClassInfo]  # every class of the new year
    classes_without_teacher: list[ClassInfo]
    # The administrator's school.year.close.requested, for a manual school; None for a
    # school whose September export turned it.
    request_id: str | None = None
