"""Every topic, worker and subscription name of the pipeline, in one place.

Commands end in ``.requested`` (imperative, from the ENT apps); everything else is an
event (past tense). The routing key of a message is its CloudEvents ``type``.
"""

from typing import Final

# Step 1: the purchase order.
ORDER_RECEIVED: Final = "order.received"
ORDER_REJECTED: Final = "order.rejected"
SCHOOL_INITIALISED: Final = "school.initialised"
INVOICE_ISSUED: Final = "invoice.issued"
INVOICE_DELIVERED: Final = "invoice.delivered"
ORDER_CANCELLED: Final = "order.cancelled"
CREDIT_NOTE_ISSUED: Final = "credit_note.issued"
CREDIT_NOTE_DELIVERED: Final = "credit_note.delivered"

# Step 2: classes and accounts.
CLASSES_CREATED: Final = "classes.created"
CLASSES_ARCHIVED: Final = "classes.archived"
SCHOOL_YEAR_TURNED: Final = "school.year.turned"
ACCOUNTS_CREATED: Final = "accounts.created"
ACCOUNTS_UPDATED: Final = "accounts.updated"
ACCOUNTS_DEACTIVATED: Final = "accounts.deactivated"
ACCOUNTS_DELETED: Final = "accounts.deleted"
ACCOUNTS_ATTACHED: Final = "accounts.attached"
ACCOUNTS_DETACHED: Final = "accounts.detached"
DIRECTORY_SYNC_REQUESTED: Final = "directory.sync.requested"
DIRECTORY_SYNCED: Final = "directory.synced"
DIRECTORY_SYNC_REPORTED: Final = "directory.sync.reported"
DIRECTORY_SYNC_HELD: Final = "directory.sync.held"
DIRECTORY_SYNC_APPLIED: Final = "directory.sync.applied"
DIRECTORY_SYNC_APPROVE_REQUESTED: Final = "directory.sync.approve.requested"
DIRECTORY_SYNC_REVERT_REQUESTED: Final = "directory.sync.revert.requested"
ACCOUNTS_CREATE_REQUESTED: Final = "accounts.create.requested"
CLASS_RENAME_REQUESTED: Final = "class.rename.requested"
CLASS_RENAMED: Final = "class.renamed"
CLASS_TEACHERS_ASSIGN_REQUESTED: Final = "class.teachers.assign.requested"
CLASS_TEACHERS_ASSIGNED: Final = "class.teachers.assigned"
ACTIVATION_CODE_RENEW_REQUESTED: Final = "activation_code.renew.requested"
ACTIVATION_CODE_RENEWED: Final = "activation_code.renewed"
ACCOUNT_ACTIVATED: Final = "account.activated"
SCHOOL_YEAR_CLOSE_REQUESTED: Final = "school.year.close.requested"
CLASS_PUPILS_PLACE_REQUESTED: Final = "class.pupils.place.requested"

# Step 3: credentials.
CREDENTIALS_DISPATCH_REQUESTED: Final = "credentials.dispatch.requested"
CREDENTIALS_DISPATCHED: Final = "credentials.dispatched"
CREDENTIALS_DOCUMENT_SEND_REQUESTED: Final = "credentials.document.send.requested"

COMMAND_REJECTED: Final = "command.rejected"

ORDER_INTAKE: Final = "order_intake"
DIRECTORY_SYNC: Final = "directory_sync"
ACCOUNT_MANAGER: Final = "account_manager"
CREDENTIAL_DISPATCH: Final = "credential_dispatch"
WORKERS: Final = (ORDER_INTAKE, DIRECTORY_SYNC, ACCOUNT_MANAGER, CREDENTIAL_DISPATCH)


def source_of(worker: str) -> str:
    """The CloudEvents ``source`` of what a worker (or a tool) publishes."""
    return f"urn:one:{worker}"


# Binding keys of each worker's queue. A worker's routing table must cover exactly these.
SUBSCRIPTIONS: Final[dict[str, tuple[str, ...]]] = {
    ORDER_INTAKE: (ORDER_RECEIVED, ORDER_CANCELLED),
    DIRECTORY_SYNC: (
        SCHOOL_INITIALISED,
        DIRECTORY_SYNC_REQUESTED,
        DIRECTORY_SYNC_APPROVE_REQUESTED,
        DIRECTORY_SYNC_REVERT_REQUESTED,
    ),
    ACCOUNT_MANAGER: (
        SCHOOL_INITIALISED,
        ACCOUNTS_CREATE_REQUESTED,
        CLASS_RENAME_REQUESTED,
        CLASS_TEACHERS_ASSIGN_REQUESTED,
        ACTIVATION_CODE_RENEW_REQUESTED,
        SCHOOL_YEAR_CLOSE_REQUESTED,
        CLASS_PUPILS_PLACE_REQUESTED,
        ACCOUNT_ACTIVATED,
        DIRECTORY_SYNCED,
    ),
    CREDENTIAL_DISPATCH: (
        ACCOUNTS_CREATED,
        ACCOUNTS_UPDATED,
        ACCOUNTS_DEACTIVATED,
        ACCOUNTS_DELETED,
        ACCOUNTS_ATTACHED,
        ACCOUNTS_DETACHED,
        INVOICE_ISSUED,
        CREDIT_NOTE_ISSUED,
        ACTIVATION_CODE_RENEWED,
        ACCOUNT_ACTIVATED,
        CLASSES_CREATED,
        CLASSES_ARCHIVED,
        SCHOOL_YEAR_TURNED,
        CLASS_RENAMED,
        CLASS_TEACHERS_ASSIGNED,
        CREDENTIALS_DISPATCH_REQUESTED,
        CREDENTIALS_DOCUMENT_SEND_REQUESTED,
    ),
}

# Routing keys each worker publishes on the events exchange: the broker lets its user
# write these and nothing else (topic permissions, tools/deploy_config.py), so that no
# worker can forge another's event or a command.
PUBLICATIONS: Final[dict[str, tuple[str, ...]]] = {
    ORDER_INTAKE: (SCHOOL_INITIALISED, INVOICE_ISSUED, CREDIT_NOTE_ISSUED, ORDER_REJECTED),
    DIRECTORY_SYNC: (
        DIRECTORY_SYNCED,
        DIRECTORY_SYNC_REPORTED,
        DIRECTORY_SYNC_HELD,
        COMMAND_REJECTED,
    ),
    ACCOUNT_MANAGER: (
        CLASSES_CREATED,
        CLASSES_ARCHIVED,
        SCHOOL_YEAR_TURNED,
        ACCOUNTS_CREATED,
        ACCOUNTS_UPDATED,
        ACCOUNTS_DEACTIVATED,
        ACCOUNTS_DELETED,
        ACCOUNTS_ATTACHED,
        ACCOUNTS_DETACHED,
        DIRECTORY_SYNC_APPLIED,
        ACTIVATION_CODE_RENEWED,
        CLASS_RENAMED,
        CLASS_TEACHERS_ASSIGNED,
        COMMAND_REJECTED,
    ),
    CREDENTIAL_DISPATCH: (
        CREDENTIALS_DISPATCHED,
        INVOICE_DELIVERED,
        CREDIT_NOTE_DELIVERED,
        COMMAND_REJECTED,
    ),
}

# What the ENT sends (the broker user one_ent may write these only): every command (the
# admin console's, the class settings app's, the operators' console's) and its report of
# an activation. ``requested_by`` in them is trusted because nobody else may publish them.
ENT_COMMANDS: Final = (
    ACCOUNTS_CREATE_REQUESTED,
    CLASS_RENAME_REQUESTED,
    CLASS_TEACHERS_ASSIGN_REQUESTED,
    ACTIVATION_CODE_RENEW_REQUESTED,
    SCHOOL_YEAR_CLOSE_REQUESTED,
    CLASS_PUPILS_PLACE_REQUESTED,
    CREDENTIALS_DISPATCH_REQUESTED,
    CREDENTIALS_DOCUMENT_SEND_REQUESTED,
    DIRECTORY_SYNC_REQUESTED,
    DIRECTORY_SYNC_APPROVE_REQUESTED,
    DIRECTORY_SYNC_REVERT_REQUESTED,
    ACCOUNT_ACTIVATED,
)
# What the order system sends (the broker user one_orders may write these only).
ORDER_COMMANDS: Final = (ORDER_RECEIVED, ORDER_CANCELLED)

# Events that upstream systems read; all of them are also bound to the integration queue,
# so a publish with ``mandatory`` is always routable and nothing is silently dropped.
UPSTREAM_EVENTS: Final = (
    ORDER_REJECTED,
    SCHOOL_INITIALISED,
    INVOICE_ISSUED,
    INVOICE_DELIVERED,
    CREDIT_NOTE_ISSUED,
    CREDIT_NOTE_DELIVERED,
    CLASSES_CREATED,
    CLASSES_ARCHIVED,
    SCHOOL_YEAR_TURNED,
    ACCOUNTS_CREATED,
    ACCOUNTS_UPDATED,
    ACCOUNTS_DEACTIVATED,
    ACCOUNTS_DELETED,
    ACCOUNTS_ATTACHED,
    ACCOUNTS_DETACHED,
    DIRECTORY_SYNC_REPORTED,
    DIRECTORY_SYNC_HELD,
    DIRECTORY_SYNC_APPLIED,
    CREDENTIALS_DISPATCHED,
    COMMAND_REJECTED,
    CLASS_RENAMED,
    CLASS_TEACHERS_ASSIGNED,
    ACTIVATION_CODE_RENEWED,
)
