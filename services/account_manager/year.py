"""The school year of a manual school: its administrator closes it, its teachers place
their pupils in the new year's classes.

A fed school's year turns with its September export (``feed.py``); a manual school has
no export, so its administrator says when (``school.year.close.requested``). Its classes
are archived as the feed archives them (their teachers detached), and as many new empty
classes are made as the order once made (``Classe 1`` …), for the administrator to attach
the teachers to and the teachers to rename, as in the school's first year. Pupils and
parents keep their accounts (logins, activation) without a class until a teacher places
them (``class.pupils.place.requested``).
"""

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from services.account_manager import domain, events, scope
from services.account_manager.commands import reject
from services.account_manager.domain import SOURCE
from services.account_manager.ports import FeedStore
from shared.contracts.commands import (
    ClassPupilsPlaceRequested,
    SchoolYearCloseRequested,
)
from shared.envelope import Envelope, follow
from shared.logs import get_logger

log = get_logger(__name__)
PARIS = ZoneInfo("Europe/Paris")


async def handle_school_year_close(
    event: Envelope[SchoolYearCloseRequested], *, store: FeedStore, now: datetime
) -> None:
    command = event.data
    school = await store.school(command.school_id)
    last_closed = await store.year_closed_at(command.school_id) if school else None
    reasons = scope.check_year_close(
        await store.requester(command.requested_by),
        command.school_id,
        school.provisioning if school else None,
        last_closed.astimezone(PARIS).date() if last_closed else None,
        now.astimezone(PARIS).date(),
    )
    if reasons or school is None:
        await reject(event, reasons, store=store)
        return
    closing = await store.school_classes(school.school_id)
    archived, detached = await store.archive_classes(list(closing), now)
    count = command.classes or max(len(closing), 1)
    fresh = [(uuid.uuid4(), name) for name in domain.manual_class_names(count)]
    await store.add_classes(school.school_id, fresh)
    await store.mark_year_closed(school.school_id, now)
    out = events.year_closed(school.school_id, archived, detached, fresh, command.request_id)
    await store.emit_all([follow(event, data, source=SOURCE) for data in out])
    log.info(
        "school_year_closed",
        school_id=str(school.school_id),
        archived=len(archived),
        classes=count,
    )


async def handle_class_pupils_place(
    event: Envelope[ClassPupilsPlaceRequested], *, store: FeedStore
) -> None:
    command = event.data
    klass = await store.class_row(command.class_id)
    requester = await store.requester(command.requested_by)
    pupil_ids = list(dict.fromkeys(command.pupils))
    pupils = await store.account_rows(pupil_ids, lock=True)
    reasons = scope.check_place(requester, klass, command.class_id, pupil_ids, pupils)
    if reasons or klass is None:  # an unknown class has its reason
        await reject(event, reasons, store=store)
        return
    parents = sorted(await store.parents_of(pupil_ids, active=True))
    await store.link_to_class([*pupil_ids, *parents], klass.class_id)
    views = await store.account_views([*pupil_ids, *parents])
    updated = events.pupils_placed(
        klass.school_id, views, [*pupil_ids, *parents], command.request_id
    )
    await store.emit(follow(event, updated, source=SOURCE))
    log.info("pupils_placed", class_id=str(klass.class_id), pupils=len(pupil_ids))
