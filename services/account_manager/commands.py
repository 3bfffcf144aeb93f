"""account_manager's command handlers: the administrator's and the teachers' requests.

Each command ends in exactly one event with its request id as correlationid: its
success event, or ``command.rejected`` with reasons field by field and nothing changed.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from services.account_manager import domain, events, scope
from services.account_manager.domain import NewAccount
from services.account_manager.feed_rules import MatchKey, match_key
from services.account_manager.ports import AccountStore, ReserveRanks
from shared.commands import reject_command
from shared.contracts.accounts import CreatedAccount
from shared.contracts.commands import (
    AccountActivated,
    AccountsCreateRequested,
    AccountToCreate,
    ActivationCodeRenewRequested,
    ClassRenameRequested,
    ClassTeachersAssignRequested,
)
from shared.contracts.common import Reason
from shared.envelope import Envelope, follow
from shared.errors import PermanentError
from shared.logs import get_logger

log = get_logger(__name__)


async def reject(event: Envelope[Any], reasons: list[Reason], *, store: AccountStore) -> None:
    await reject_command(event, reasons, store=store, source=domain.SOURCE)


reject_invalid = reject


# accounts.create.requested ---------------------------------------------------------------


async def handle_accounts_create(
    event: Envelope[AccountsCreateRequested],
    *,
    store: AccountStore,
    activation_ttl: timedelta,
    now: datetime,
    reserve_ranks: ReserveRanks | None = None,
) -> None:
    command = event.data
    requester = await store.requester(command.requested_by)
    classes = await store.school_classes(command.school_id)
    named = [UUID(c) for a in command.accounts for c in a.children if _is_uuid(c)]
    children = await store.account_rows(named) if named else {}
    reasons = scope.check_create(command, requester, classes, children)
    if not reasons:
        reasons = await _duplicates(command, store=store)
    school = await store.school(command.school_id)
    if reasons or school is None:
        await reject(
            event, reasons or [Reason(field="school_id", message="unknown school")], store=store
        )
        return

    accounts = await _create_all(
        command, classes, activation_ttl, now, store=store, reserve=reserve_ranks
    )
    await store.emit(follow(event, events.accounts_created(school, accounts), source=domain.SOURCE))
    log.info("accounts_created", count=len(accounts))


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _key(wanted: AccountToCreate) -> MatchKey:
    return match_key(wanted.profile, wanted.first_name, wanted.last_name, wanted.birth_date)


async def _duplicates(command: AccountsCreateRequested, *, store: AccountStore) -> list[Reason]:
    """The matching rule of DESIGN §4: same school, profile, folded names (and birth date
    for a pupil) is the same person, unless the request says he is another one."""
    checked = [(i, a, _key(a)) for i, a in enumerate(command.accounts) if not a.different_person]
    keys = sorted({key for _, _, key in checked}, key=str)
    # Two requests creating the same person at once must not both pass: one waits.
    await store.lock_people(command.school_id, keys)
    known = await store.existing_people(command.school_id, keys)
    reasons: list[Reason] = []
    seen: set[MatchKey] = set()
    for index, wanted, key in checked:
        if key in known or key in seen:
            born = f", born {wanted.birth_date:%d/%m/%Y}" if wanted.profile == "student" else ""
            reasons.append(
                Reason(
                    field=f"accounts.{index}",
                    message=(
                        f"{wanted.first_name} {wanted.last_name} ({wanted.profile}{born})"
                        " already has an account in this school; send different_person: true"
                        " if this is another person"
                    ),
                )
            )
        seen.add(key)
    return reasons


async def _create_all(
    command: AccountsCreateRequested,
    classes: Mapping[UUID, scope.ClassRow],
    ttl: timedelta,
    now: datetime,
    *,
    store: AccountStore,
    reserve: ReserveRanks | None,
) -> list[CreatedAccount]:
    """The request's accounts, created together: one rank reservation, one insert, one
    statement for the class links and one for the children, whatever their number (a
    class's worth of pupils was ten times each). In the request's order."""
    wanted = command.accounts
    expires = domain.activation_expiry(now, ttl)
    made = [
        domain.new_account(
            command.school_id,
            w.profile,
            w.first_name,
            w.last_name,
            email=w.email,
            birth_date=w.birth_date,
            expires_at=expires,
        )
        for w in wanted
    ]
    by_ref = {w.ref: a.account_id for w, a in zip(wanted, made, strict=True) if w.ref}
    children = [[by_ref[c] if c in by_ref else UUID(c) for c in w.children] for w in wanted]
    # Pupils before parents, as when they were created one by one: which of two namesakes
    # of a request gets the smaller rank does not change.
    order = sorted(range(len(wanted)), key=lambda i: wanted[i].profile == "relative")
    logins = await store.add_accounts(
        [made[i] for i in order],
        [domain.login_base(wanted[i].first_name, wanted[i].last_name) for i in order],
        reserve,
    )
    placed = await _place_all(made, wanted, children, store=store)
    return [
        events.created_account(a, logins[a.account_id], placed[a.account_id], classes, kids)
        for a, kids in zip(made, children, strict=True)
    ]


async def _place_all(
    made: list[NewAccount],
    wanted: list[AccountToCreate],
    children: list[list[UUID]],
    *,
    store: AccountStore,
) -> dict[UUID, list[UUID]]:
    """Attach the new accounts to their classes: a teacher as one of its teachers, a
    parent to the classes of his children (whom the request may have just placed); the
    classes each ends up in."""
    own = {a.account_id: w.class_ids for a, w in zip(made, wanted, strict=True)}
    for account, w in zip(made, wanted, strict=True):
        for class_id in w.class_ids if w.profile == "teacher" else []:
            teachers = {*await store.class_teachers(class_id), account.account_id}
            await store.set_class_teachers(class_id, sorted(teachers, key=str))
    links = [(a.account_id, c) for a, kids in zip(made, children, strict=True) for c in kids]
    known = await store.classes_of(sorted({c for _, c in links if c not in own}, key=str))
    joined: dict[UUID, set[UUID]] = {a: set(cs) for a, cs in own.items()}
    for parent, child in links:
        joined[parent] |= set(own[child]) if child in own else known[child]
    placed = {
        a.account_id: list(w.class_ids)
        if w.profile == "teacher"
        else sorted(joined[a.account_id], key=str)
        for a, w in zip(made, wanted, strict=True)
    }
    await store.link_children_pairs(links)
    await store.link_class_pairs(
        [
            (a.account_id, c)
            for a, w in zip(made, wanted, strict=True)
            if w.profile != "teacher"
            for c in placed[a.account_id]
        ]
    )
    return placed


# class.rename.requested, class.teachers.assign.requested ---------------------------------


async def handle_class_rename(
    event: Envelope[ClassRenameRequested], *, store: AccountStore
) -> None:
    command = event.data
    klass = await store.class_row(command.class_id)
    requester = await store.requester(command.requested_by)
    reasons = scope.check_class_command(requester, klass, command.class_id, teacher_may=True)
    name = " ".join(command.name.split())
    if not reasons and klass is not None:
        others = await store.class_names(klass.school_id, except_class=klass.class_id)
        reasons = scope.class_name_taken(name, others)
    if reasons or klass is None:
        await reject(event, reasons, store=store)
        return
    await store.rename_class(klass.class_id, name)
    renamed = events.class_renamed(klass, name, command.request_id)
    await store.emit(follow(event, renamed, source=domain.SOURCE))


async def handle_class_teachers_assign(
    event: Envelope[ClassTeachersAssignRequested], *, store: AccountStore
) -> None:
    command = event.data
    klass = await store.class_row(command.class_id)
    requester = await store.requester(command.requested_by)
    reasons = scope.check_class_command(requester, klass, command.class_id, teacher_may=False)
    if not reasons and klass is not None:
        named = [*command.add, *command.remove, *(command.set_to or [])]
        reasons = scope.check_assign(command, klass, await store.account_rows(named))
    if reasons or klass is None:
        await reject(event, reasons, store=store)
        return
    teachers = scope.teachers_after(await store.class_teachers(klass.class_id), command)
    await store.set_class_teachers(klass.class_id, teachers)
    assigned = events.teachers_assigned(
        klass.class_id, klass.school_id, teachers, command.request_id
    )
    await store.emit(follow(event, assigned, source=domain.SOURCE))


# activation codes ------------------------------------------------------------------------


async def handle_activation_code_renew(
    event: Envelope[ActivationCodeRenewRequested],
    *,
    store: AccountStore,
    activation_ttl: timedelta,
    now: datetime,
) -> None:
    command = event.data
    account = (await store.account_rows([command.account_id])).get(command.account_id)
    requester = await store.requester(command.requested_by)
    reasons = scope.check_renew(requester, account, command.account_id)
    if reasons or account is None:
        await reject(event, reasons, store=store)
        return
    code = domain.new_activation_code()
    expires = domain.activation_expiry(now, activation_ttl)
    await store.renew_code(account.account_id, code, expires)
    renewed = events.code_renewed(
        account.account_id, account.school_id, code, expires, command.request_id
    )
    await store.emit(follow(event, renewed, source=domain.SOURCE))


async def handle_account_activated(
    event: Envelope[AccountActivated], *, store: AccountStore, now: datetime
) -> None:
    activated = event.data
    if await store.activate(activated.account_id, activated.activated_at or now):
        log.info("account_activated", account_id=str(activated.account_id))
        return
    if not await store.account_rows([activated.account_id]):
        raise PermanentError(f"account {activated.account_id} is unknown")
    log.info("account_already_activated", account_id=str(activated.account_id))
