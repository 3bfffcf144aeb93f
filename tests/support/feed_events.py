"""An automatic school opened in account_manager, and directory.synced chunks built by hand
with the contract models, as directory_sync would publish them."""

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from aio_pika.abc import AbstractChannel

from shared import topics
from shared.contracts.directory import DirectorySynced, FeedClass, FeedPerson
from shared.envelope import Envelope, new_event
from tests.support.broker import EventSpy, publish_raw
from tests.support.commands import publish_school, school_initialised

FIRST = [
    "Zoé", "Léo", "Jade", "Louis", "Emma", "Gabriel", "Chloé", "Raphaël", "Inès", "Jules",
    "Lina", "Adam", "Léa", "Hugo", "Manon", "Arthur", "Camille", "Noé", "Sarah", "Ethan",
    "Anaïs", "Nathan", "Clara", "Timéo", "Mila", "Sacha", "Lou", "Paul", "Rose", "Tom",
]  # fmt: skip
LAST = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert",
    "Bonnet", "François", "Martinez", "N'Diaye",
]  # fmt: skip


@dataclass
class FedSchool:
    school_id: uuid.UUID
    uai: str
    admin_id: str


async def open_automatic_school(
    channel: AbstractChannel, exchange: str, spy: EventSpy, *, number: int = 1
) -> FedSchool:
    """A Haute-Savoie school opened as school.initialised says (provisioning automatic)."""
    school_id = uuid.uuid4()
    data = school_initialised(
        str(school_id),
        department="074",
        number=number,
        provisioning="automatic",
        classes=0,
        name="École primaire du Lac",
        academie="Grenoble",
    )
    code = data["uai"]
    await publish_school(channel, exchange, data)
    [created] = await spy.wait_for(topics.ACCOUNTS_CREATED, school_id=str(school_id))
    return FedSchool(school_id, code, created["data"]["accounts"][0]["account_id"])


def pupil(first: str, last: str, born: date, klass: str, **more: Any) -> FeedPerson:
    return FeedPerson(
        feed_id=more.pop("feed_id", uuid.uuid4()),
        profile="student",
        first_name=first,
        last_name=last,
        birth_date=born,
        classes=[klass],
        **more,
    )


def parent(first: str, last: str, *children: FeedPerson, **more: Any) -> FeedPerson:
    return FeedPerson(
        feed_id=more.pop("feed_id", uuid.uuid4()),
        profile="relative",
        first_name=first,
        last_name=last,
        children=[c.feed_id for c in children],
        **more,
    )


def teacher(first: str, last: str, *classes: str, **more: Any) -> FeedPerson:
    return FeedPerson(
        feed_id=more.pop("feed_id", uuid.uuid4()),
        profile="teacher",
        first_name=first,
        last_name=last,
        classes=list(classes),
        **more,
    )


def moved(person: FeedPerson, klass: str) -> FeedPerson:
    return person.model_copy(update={"classes": [klass]})


def chunk(
    school: FedSchool,
    run_id: uuid.UUID,
    index: int,
    of: int,
    classes: list[FeedClass],
    **changes: Any,
) -> DirectorySynced:
    return DirectorySynced(
        run_id=run_id,
        school_id=school.school_id,
        uai=school.uai,
        chunk=index,
        chunks=of,
        classes=classes,
        **changes,
    )


async def send(
    channel: AbstractChannel, exchange: str, data: DirectorySynced, *, event_id: str | None = None
) -> Envelope[Any]:
    event = new_event(
        data,
        source="urn:one:directory_sync",
        correlationid=f"sync:{data.run_id}",
        event_id=event_id,
    )
    await publish_raw(channel, exchange, event.type, event.to_json())
    return event


def population(
    seed: int, *, pupils: int, classes: list[str], teachers: int, homonyms: bool = True
) -> tuple[list[FeedPerson], list[FeedPerson], list[FeedPerson]]:
    """(pupils, parents, teachers) of a school: brothers and sisters share their parents.
    Without ``homonyms`` every person has a first name of his own (``Zoé-Léo``), so that
    no two persons of the school share a login base."""
    rng = random.Random(seed)
    taken = iter(range(len(FIRST) ** 2))

    def first_name() -> str:
        if homonyms:
            return rng.choice(FIRST)
        n = next(taken)
        return f"{FIRST[n % len(FIRST)]}-{FIRST[n // len(FIRST)]}"

    kids: list[FeedPerson] = []
    adults: list[FeedPerson] = []
    while len(kids) < pupils:
        last = rng.choice(LAST)
        family = [
            pupil(
                first_name(),
                last,
                date(2016, 1, 1) + timedelta(days=rng.randrange(1800)),
                rng.choice(classes),
            )
            for _ in range(rng.choice((1, 1, 2)))
        ]
        kids += family
        adults += [
            parent(rng.choice(FIRST), last, *family) for _ in range(rng.choice((1, 2, 2, 2)))
        ]
    staff = [
        teacher(first_name(), rng.choice(LAST), *([classes[i]] if i < len(classes) else []))
        for i in range(teachers)
    ]
    return kids, adults, staff
