"""Commands from the ENT's apps (the admin console, "Paramétrage de la classe") to
account_manager, and the events that answer them.

Every command carries ``request_id`` (also its correlationid) and ``requested_by`` (an
account id); it gets exactly one outcome: its success event, or ``command.rejected``.
"""

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, model_validator

from shared import topics
from shared.contracts.common import ClassName, Email, Model, Name, Reason
from shared.envelope import Contract

RequestId = Annotated[str, Field(min_length=1, max_length=100)]
CreatableProfile = Literal["teacher", "personnel", "student", "relative"]


class Command(Contract):
    request_id: RequestId
    requested_by: UUID


class AccountToCreate(Model):
    """One person to create. ``ref`` names him within the request, so that a parent
    created in the same request can list him among his ``children``."""

    ref: Annotated[str, Field(max_length=60)] | None = None
    profile: CreatableProfile
    first_name: Name
    last_name: Name
    birth_date: date | None = None
    email: Email | None = None
    class_ids: list[UUID] = Field(default_factory=list, max_length=20)
    # Account ids of existing pupils, or refs of pupils created by the same request.
    children: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=list, max_length=20
    )
    # The school says this is another person than the existing one with the same name.
    different_person: bool = False


class AccountsCreateRequested(Command):
    topic = topics.ACCOUNTS_CREATE_REQUESTED

    school_id: UUID
    accounts: list[AccountToCreate] = Field(min_length=1, max_length=500)


class ClassTeachersAssignRequested(Command):
    """Attach (``add``), detach (``remove``) or set the whole list (``set``)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    topic = topics.CLASS_TEACHERS_ASSIGN_REQUESTED

    class_id: UUID
    add: list[UUID] = Field(default_factory=list, max_length=100)
    remove: list[UUID] = Field(default_factory=list, max_length=100)
    set_to: list[UUID] | None = Field(default=None, alias="set", max_length=100)

    @model_validator(mode="after")
    def _one_way(self) -> "ClassTeachersAssignRequested":
        if self.set_to is not None and (self.add or self.remove):
            raise ValueError("give either set, or add and/or remove")
        if self.set_to is None and not (self.add or self.remove):
            raise ValueError("nothing to change: give add, remove or set")
        return self


class ClassRenameRequested(Command):
    topic = topics.CLASS_RENAME_REQUESTED

    class_id: UUID
    name: ClassName


class ActivationCodeRenewRequested(Command):
    topic = topics.ACTIVATION_CODE_RENEW_REQUESTED

    account_id: UUID


class AccountActivated(Contract):
    """From the ENT: the account was activated; its code is spent."""

    topic = topics.ACCOUNT_ACTIVATED

    account_id: UUID
    activated_at: datetime | None = None


class CommandRejected(Contract):
    topic = topics.COMMAND_REJECTED

    request_id: str | None
    command: str
    reasons: list[Reason]


def rejection(command_type: str, data: object, reasons: list[Reason]) -> CommandRejected:
    """The answer refusing a command, whether its payload was read (a model) or not (the
    raw dict of a payload that failed its contract)."""
    request_id = (
        data.get("request_id") if isinstance(data, dict) else getattr(data, "request_id", None)
    )
    return CommandRejected(
        request_id=request_id if isinstance(request_id, str) else None,
        command=command_type,
        reasons=reasons,
    )


class SchoolYearCloseRequested(Command):
    """A manual school's administrator closes the school year: its classes are archived
    (their teachers detached), ``classes`` new empty classes are made for the next year
    (default: as many as the year closed had), pupils and parents keep their accounts
    without a class until their teachers place them (``class.pupils.place.requested``).
    Its outcome is ``school.year.turned`` with the request's id. A school fed by ONDE turns
    its year with its September export and refuses this."""

    topic = topics.SCHOOL_YEAR_CLOSE_REQUESTED

    school_id: UUID
    classes: Annotated[int, Field(ge=1, le=60)] | None = None


class ClassPupilsPlaceRequested(Command):
    """A teacher places pupils of his school who have no class (the year closed) into one
    of his classes; the administrator into any class. Their parents follow them. Its
    outcome is ``accounts.updated`` with the request's id."""

    topic = topics.CLASS_PUPILS_PLACE_REQUESTED

    class_id: UUID
    pupils: list[UUID] = Field(min_length=1, max_length=100)


class ClassRenamed(Contract):
    topic = topics.CLASS_RENAMED

    class_id: UUID
    school_id: UUID
    name: str
    request_id: str | None = None


class ClassTeachersAssigned(Contract):
    topic = topics.CLASS_TEACHERS_ASSIGNED

    class_id: UUID
    school_id: UUID
    teachers: list[UUID]
    request_id: str | None = None


class ActivationCodeRenewed(Contract):
    topic = topics.ACTIVATION_CODE_RENEWED

    account_id: UUID
    # The account's home school. An account several schools hold has one code, whichever
    # of them renewed it (docs/one-person-across-schools.md §2): the renewal voids it in all.
    school_id: UUID
    activation_code: str
    activation_expires_at: datetime
    request_id: str | None = None


class DispatchFilter(Model):
    class_id: UUID | None = None
    profiles: list[Literal["administrator", "teacher", "personnel", "student", "relative"]] = Field(
        default_factory=list
    )
    not_activated: bool = False


class CredentialsDispatchRequested(Command):
    """Hand out connection sheets: ``print`` makes one document for the requester (a PDF in
    the ``detailed`` or ``compact`` layout, or the ``csv`` export of logins and codes),
    emailed to him and stored; ``email`` sends each user his own sheet (a pupil's goes to
    his parents)."""

    topic = topics.CREDENTIALS_DISPATCH_REQUESTED

    school_id: UUID
    account_ids: list[UUID] | None = Field(default=None, max_length=5000)
    filter: DispatchFilter | None = None
    channel: Literal["email", "print"]
    layout: Literal["detailed", "compact", "csv"] = "detailed"

    @model_validator(mode="after")
    def _one_selection(self) -> "CredentialsDispatchRequested":
        if (self.account_ids is None) == (self.filter is None):
            raise ValueError("give either account_ids or filter")
        if self.channel == "email" and self.layout != "detailed":
            raise ValueError("an email carries the detailed sheet: layout is for print")
        return self


class CredentialsDocumentSendRequested(Command):
    """Send a printed document again, by the id that ``credentials.dispatched`` gave, to the
    requester: the one who asked for it, or his school's administrator. The document is sent
    as it was printed (codes renewed or spent since are not updated: print again for that)."""

    topic = topics.CREDENTIALS_DOCUMENT_SEND_REQUESTED

    school_id: UUID
    document_id: UUID
