"""What credential_dispatch's handlers need of a store: the Protocol they are written against.

The rows that cross it are in ``model``. ``store.PostgresDispatchStore`` is the real store
(all the SQL); tests/fakes holds an in-memory one that records state, so that the handlers
run without Postgres in the unit tier. The delivery loop has statements of its own
(``store.DeliveryQueries``), outside any message's transaction.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.credential_dispatch.model import (
    Audited,
    Delivery,
    Dispatch,
    DispatchOutcome,
    Printed,
    Requester,
    Selected,
)
from shared.contracts.accounts import Account, CreatedAccount
from shared.contracts.commands import ActivationCodeRenewed
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.store import EventStore


class DispatchStore(EventStore, Protocol):
    # The copy of schools, accounts and classes, as account_manager's events give them.

    async def upsert_school(
        self, school_id: UUID, *, uai: str | None, name: str, provisioning: str | None
    ) -> None:
        """A school's name and UAI as given; its provisioning kept when none is given."""
        ...

    async def school_name(self, school_id: UUID) -> str | None: ...

    async def upsert_accounts(self, school_id: UUID, accounts: list[CreatedAccount]) -> None:
        """New accounts, or known ones as given again (their home school, activation and
        deactivation stay as they were; a known account of another home is attached to
        this school, which created it)."""
        ...

    async def attach_accounts(self, school_id: UUID, accounts: list[Account]) -> None:
        """Accounts now in this school too: names, login, address, classes and children as
        given (a new copy has no code: the code is its accounts.created's), each attached
        to the school unless it is its home."""
        ...

    async def detach_accounts(self, school_id: UUID, account_ids: list[UUID]) -> None:
        """Accounts no longer in this school: out of its classes, and attached to it no
        more; one whose home it was gets the school it was attached to first (none: it
        keeps its home, the only school known here)."""
        ...

    async def link_accounts(self, accounts: Sequence[Account]) -> None:
        """Add the accounts' classes and children (links already there are kept)."""
        ...

    async def update_accounts(self, school_id: UUID, accounts: list[Account]) -> None:
        """Follow account_manager's changes to accounts in this school (their home or one
        they are attached to): names, address, classes and children (a moved pupil, a
        parent whose child moved); the activation code stays as it was."""
        ...

    async def set_deactivated(self, account_ids: list[UUID], *, deactivated: bool) -> None:
        """Deactivated (its code voided, as account_manager voids it) or active again (with
        no code until activation_code.renewed gives one)."""
        ...

    async def delete_accounts(self, account_ids: list[UUID]) -> None:
        """Forget removed accounts and their links, as parent and as child; a delivery
        still waiting for one is reported undeliverable when its turn comes."""
        ...

    async def renew_code(self, renewed: ActivationCodeRenewed) -> None:
        """The new code replaces the old one, which is never printed again; an account
        activated already keeps no code."""
        ...

    async def mark_activated(self, account_id: UUID, at: datetime) -> None:
        """The code is spent; the first activation's time is kept."""
        ...

    async def upsert_classes(self, school_id: UUID, classes: list[tuple[UUID, str]]) -> None: ...

    async def archive_classes(self, class_ids: list[UUID]) -> None:
        """Classes the school no longer has: out of every scope and print."""
        ...

    async def set_class_teachers(self, class_id: UUID, teachers: list[UUID]) -> None:
        """The class's teachers are ``teachers``; its pupils and parents stay attached."""
        ...

    # What a request is checked and planned with.

    async def administrators(self, school_id: UUID) -> list[tuple[UUID, str | None]]:
        """The school's active administrators (of this home or attached to it) and their
        addresses, by account id."""
        ...

    async def requester(self, account_id: UUID) -> Requester | None:
        """An active account, with its classes and the schools it is attached to; None when
        unknown or deactivated."""
        ...

    async def class_school(self, class_id: UUID) -> UUID | None: ...

    async def select(
        self,
        school_id: UUID,
        account_ids: list[UUID] | None,
        class_id: UUID | None,
        profiles: list[str],
        not_activated: bool,
    ) -> list[Selected]:
        """The active accounts a request names (of any school: the caller checks), or
        those of the school its filter picks (its home or attached to it), with their
        classes and schools, by last then first name."""
        ...

    async def parents_of(self, child_ids: list[UUID]) -> dict[UUID, list[tuple[UUID, str | None]]]:
        """Each child's active parents and their addresses, by name; [] for a child with
        none (a deactivated parent is sent nothing)."""
        ...

    async def emails_of(self, account_ids: list[UUID]) -> dict[UUID, str | None]:
        """The address of each known account."""
        ...

    async def printed(self, document_id: UUID) -> Printed | None:
        """A stored document and the request that printed it."""
        ...

    # What to send, and what was handed out.

    async def add_invoice(self, invoice: InvoiceIssued | CreditNoteIssued) -> None:
        """An invoice or a credit note, kept to be printed when its mail is sent; a
        second copy of one is ignored."""
        ...

    async def add_dispatch(self, dispatch: Dispatch, deliveries: list[Delivery]) -> None:
        """The dispatch and its deliveries (each of them filed under this dispatch)."""
        ...

    async def audit(self, entry: Audited) -> None:
        """A hand-out of credentials, or a refused request for one."""
        ...

    async def complete_if_done(self, dispatch_id: UUID) -> DispatchOutcome | None:
        """The dispatch's outcome, once none of its deliveries is pending, recorded in its
        audit entry; None while one is, or when it was completed already."""
        ...
