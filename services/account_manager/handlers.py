"""account_manager's handlers and routing table."""

import uuid
from datetime import datetime, timedelta

from services.account_manager import commands, domain, events, year
from services.account_manager.feed import AccountLifetimes, handle_directory_synced
from services.account_manager.ports import (
    AccountStore,
    FeedStore,
    ReserveRanks,
    SchoolInfo,
)
from services.account_manager.settings import AccountManagerSettings
from shared import topics
from shared.contracts.commands import (
    AccountActivated,
    AccountsCreateRequested,
    ActivationCodeRenewRequested,
    ClassPupilsPlaceRequested,
    ClassRenameRequested,
    ClassTeachersAssignRequested,
    SchoolYearCloseRequested,
)
from shared.contracts.directory import DirectorySynced
from shared.contracts.orders import SchoolInitialised
from shared.envelope import Envelope, follow
from shared.errors import PermanentError
from shared.logs import get_logger
from shared.messaging.consumer import Route
from shared.runtime import Clock, utc_now

log = get_logger(__name__)


async def handle_school_initialised(
    event: Envelope[SchoolInitialised],
    *,
    store: AccountStore,
    activation_ttl: timedelta,
    now: datetime,
    reserve_ranks: ReserveRanks | None = None,
) -> None:
    school = event.data
    if not await store.add_school(
        school.school_id, uai=school.uai, name=school.name, provisioning=school.provisioning
    ):
        log.info("school_already_known", school_id=str(school.school_id))
        return
    admin = school.administrator
    account = domain.new_account(
        school.school_id,
        "administrator",
        admin.first_name,
        admin.last_name,
        email=admin.email,
        birth_date=None,
        expires_at=domain.activation_expiry(now, activation_ttl),
    )
    try:
        base = domain.login_base(admin.first_name, admin.last_name)
    except ValueError as exc:  # a name with nothing to make a login of: an operator must fix it
        raise PermanentError(f"administrator's login: {exc}") from exc
    login = await store.add_account(account, login_base=base, reserve=reserve_ranks)
    if school.provisioning == "manual":
        classes = [(uuid.uuid4(), name) for name in domain.manual_class_names(school.classes)]
        await store.add_classes(school.school_id, classes)
        created = events.classes_created(school.school_id, classes)
        await store.emit(follow(event, created, source=domain.SOURCE))
    info = SchoolInfo(school.school_id, school.uai, school.name, school.provisioning)
    opened = events.accounts_created(info, [events.created_account(account, login, [], {}, [])])
    await store.emit(follow(event, opened, source=domain.SOURCE))
    log.info(
        "school_opened",
        school_id=str(school.school_id),
        login=login,
        classes=school.classes if school.provisioning == "manual" else 0,
    )


def routes(
    settings: AccountManagerSettings,
    clock: Clock = utc_now,
    reserve_ranks: ReserveRanks | None = None,
) -> dict[str, Route[FeedStore]]:
    ttl = timedelta(days=settings.activation_ttl_days)
    lifetimes = AccountLifetimes(
        activation_ttl=ttl, grace=timedelta(days=settings.deactivation_grace_days)
    )

    async def on_school(event: Envelope[SchoolInitialised], *, store: AccountStore) -> None:
        await handle_school_initialised(
            event, store=store, activation_ttl=ttl, now=clock(), reserve_ranks=reserve_ranks
        )

    async def on_create(event: Envelope[AccountsCreateRequested], *, store: AccountStore) -> None:
        await commands.handle_accounts_create(
            event, store=store, activation_ttl=ttl, now=clock(), reserve_ranks=reserve_ranks
        )

    async def on_renew(
        event: Envelope[ActivationCodeRenewRequested], *, store: AccountStore
    ) -> None:
        await commands.handle_activation_code_renew(
            event, store=store, activation_ttl=ttl, now=clock()
        )

    async def on_activated(event: Envelope[AccountActivated], *, store: AccountStore) -> None:
        await commands.handle_account_activated(event, store=store, now=clock())

    async def on_synced(event: Envelope[DirectorySynced], *, store: FeedStore) -> None:
        await handle_directory_synced(
            event,
            store=store,
            lifetimes=lifetimes,
            now=clock(),
            reserve_ranks=reserve_ranks,
            across_schools=settings.accounts_across_schools,
        )

    async def on_year_close(event: Envelope[SchoolYearCloseRequested], *, store: FeedStore) -> None:
        await year.handle_school_year_close(event, store=store, now=clock())

    rejected = commands.reject_invalid
    return {
        topics.SCHOOL_INITIALISED: Route(SchoolInitialised, on_school),
        topics.ACCOUNTS_CREATE_REQUESTED: Route(AccountsCreateRequested, on_create, rejected),
        topics.CLASS_RENAME_REQUESTED: Route(
            ClassRenameRequested, commands.handle_class_rename, rejected
        ),
        topics.CLASS_TEACHERS_ASSIGN_REQUESTED: Route(
            ClassTeachersAssignRequested, commands.handle_class_teachers_assign, rejected
        ),
        topics.ACTIVATION_CODE_RENEW_REQUESTED: Route(
            ActivationCodeRenewRequested, on_renew, rejected
        ),
        topics.SCHOOL_YEAR_CLOSE_REQUESTED: Route(
            SchoolYearCloseRequested, on_year_close, rejected
        ),
        topics.CLASS_PUPILS_PLACE_REQUESTED: Route(
            ClassPupilsPlaceRequested, year.handle_class_pupils_place, rejected
        ),
        topics.ACCOUNT_ACTIVATED: Route(AccountActivated, on_activated),
        topics.DIRECTORY_SYNCED: Route(DirectorySynced, on_synced),
    }
