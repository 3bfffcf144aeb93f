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
