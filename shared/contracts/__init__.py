"""Pydantic models of every message, and the registry from topic to model."""

from shared.contracts.accounts import (
    AccountsCreated,
    ClassesArchived,
    ClassesCreated,
    SchoolYearTurned,
)
from shared.contracts.commands import (
    AccountActivated,
    AccountsCreateRequested,
    ActivationCodeRenewed,
    ActivationCodeRenewRequested,
    ClassPupilsPlaceRequested,
    ClassRenamed,
    ClassRenameRequested,
    ClassTeachersAssigned,
    ClassTeachersAssignRequested,
    CommandRejected,
    CredentialsDispatchRequested,
    CredentialsDocumentSendRequested,
    SchoolYearCloseRequested,
)
from shared.contracts.common import Reason
from shared.contracts.credentials import CredentialsDispatched
from shared.contracts.directory import (
    AccountsAttached,
    AccountsDeactivated,
    AccountsDeleted,
    AccountsDetached,
    AccountsUpdated,
    DirectorySyncApplied,
    DirectorySyncApproveRequested,
    DirectorySynced,
    DirectorySyncHeld,
    DirectorySyncReported,
    DirectorySyncRequested,
    DirectorySyncRevertRequested,
)
from shared.contracts.orders import (
    CreditNoteDelivered,
    CreditNoteIssued,
    InvoiceDelivered,
    InvoiceIssued,
    OrderCancelled,
    OrderReceived,
    OrderRejected,
    SchoolInitialised,
)
from shared.envelope import Contract

CONTRACTS: dict[str, type[Contract]] = {
    model.topic: model
    for model in (
        OrderReceived,
        OrderRejected,
        SchoolInitialised,
        InvoiceIssued,
        InvoiceDelivered,
        OrderCancelled,
        CreditNoteIssued,
        CreditNoteDelivered,
        ClassesCreated,
        ClassesArchived,
        SchoolYearTurned,
        AccountsCreated,
        CredentialsDispatched,
        AccountsCreateRequested,
        ClassRenameRequested,
        ClassRenamed,
        ClassTeachersAssignRequested,
        ClassTeachersAssigned,
        ActivationCodeRenewRequested,
        ActivationCodeRenewed,
        SchoolYearCloseRequested,
        ClassPupilsPlaceRequested,
        AccountActivated,
        CommandRejected,
        CredentialsDispatchRequested,
        CredentialsDocumentSendRequested,
        DirectorySyncRequested,
        DirectorySyncApproveRequested,
        DirectorySyncRevertRequested,
        DirectorySynced,
        DirectorySyncReported,
        DirectorySyncHeld,
        DirectorySyncApplied,
        AccountsUpdated,
        AccountsDeactivated,
        AccountsDeleted,
        AccountsAttached,
        AccountsDetached,
    )
}

__all__ = ["CONTRACTS", "Reason"]
