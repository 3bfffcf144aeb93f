"""Hand-written ONDE drops and directory_sync's messages, for the feed tests."""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractChannel

from shared import topics
from tests.support.broker import EventSpy, publish_raw
from tests.support.orders import cloudevent
from tools.waits import eventually

PUPILS_FILE = "CSVExtraction-eleves.csv"
PARENTS_FILE = "CSVExtraction-responsables.csv"
TEACHERS_FILE = "enseignants.csv"
PUPILS_HEADER = ["Nom Elève", "Nom d'usage Elève", "Prénom Elève", "Date naissance", "Sexe"]
PUPILS_HEADER += ["Niveau", "Classe"]
PARENTS_HEADER = ["Civilité Responsable", "Nom usage responsable", "Nom responsable"]
PARENTS_HEADER += ["Prénom responsable", "Courriel"]
PARENTS_HEADER += [
    "Nom d'usage enfant",
    "Nom de famille enfant",
    "Prénom enfant",
    "Classes enfants",
]
TEACHERS_HEADER = ["Civilité", "Nom usage", "Nom", "Prénom", "Courriel", "Directeur", "Classe"]


@dataclass(frozen=True)
class Kid:
    first: str
    last: str
    born: str  # dd/mm/yyyy
    cls: str
    ine: str = ""  # written in an INE column when any pupil of the drop has one

    def moved(self, cls: str) -> "Kid":
        return replace(self, cls=cls)


@dataclass(frozen=True)
class Adult:
    first: str
    last: str
    email: str  # "" for none
    children: tuple[Kid, ...]


@dataclass(frozen=True)
class Staff:
    first: str
    last: str
    email: str
    cls: str
    director: bool = False


@dataclass
class Drop:
    kids: list[Kid]
    adults: list[Adult] = field(default_factory=list)
    staff: list[Staff] = field(default_factory=list)

    def files(self, *, without_column: str | None = None) -> dict[str, list[list[str]]]:
        pupils = [PUPILS_HEADER] + [
            [k.last, "", k.first, k.born, "", k.cls.split()[0], k.cls] for k in self.kids
        ]
        if any(k.ine for k in self.kids):  # the newer layout's INE, after "Sexe"
            at = PUPILS_HEADER.index("Sexe") + 1
            pupils = [
                [*row[:at], ine, *row[at:]]
                for row, ine in zip(pupils, ["INE", *(k.ine for k in self.kids)], strict=True)
            ]
        parents = [PARENTS_HEADER]
        for a in self.adults:
            for kid in a.children:  # one row per child: ONDE's one parent over several rows
                parents.append(
                    ["Mme", "", a.last, a.first, a.email, "", kid.last, kid.first, kid.cls]
                )
        teachers = [TEACHERS_HEADER] + [
            ["M.", "", t.last, t.first, t.email, "Oui" if t.director else "Non", t.cls]
            for t in self.staff
        ]
        files = {PUPILS_FILE: pupils, PARENTS_FILE: parents, TEACHERS_FILE: teachers}
        if without_column is not None:
            rows = files[PUPILS_FILE]
            index = rows[0].index(without_column)
            files[PUPILS_FILE] = [row[:index] + row[index + 1 :] for row in rows]
        return files

    def write(
        self,
        feed_dir: Path,
        uai: str,
        *,
        encoding: str = "utf-8",
        without_column: str | None = None,
    ) -> Path:
        folder = feed_dir / uai
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in self.files(without_column=without_column).items():
            text = "".join(";".join(row) + "\r\n" for row in rows)
            (folder / name).write_bytes(text.encode(encoding))
        return folder

    @property
    def persons(self) -> int:
        return len(self.kids) + len(self.adults) + len(self.staff)


def small_school(pupils: int = 12) -> Drop:
    """``pupils`` pupils in two classes, one parent each (a mother of two), two teachers."""
    kids = [
        Kid(f"Élève{n}", f"FAMILLE{n}", f"{n + 1:02d}/03/2018", "CE1" if n % 2 else "CP")
        for n in range(pupils)
    ]
    adults = [
        Adult(f"Parent{n}", f"FAMILLE{n}", f"parent{n}@example.org", (kid,))
        for n, kid in enumerate(kids)
    ]
    staff = [
        Staff("Marie", "CURIE", "marie.curie@example.org", "CP", director=True),
        Staff("Paul", "LANGEVIN", "paul.langevin@example.org", "CE1"),
    ]
    return Drop(kids, adults, staff)


def school_initialised(uai: str, academie: str | None = "Grenoble") -> dict[str, Any]:
    return {
        "school_id": str(uuid.uuid4()),
        "order_id": f"BC-{uai}",
        "uai": uai,
        "name": f"École {uai}",
        "academie": academie,
        "department": uai[:3],
        "provisioning": "automatic",
        "classes": 2,
        "administrator": {
            "first_name": "Claire",
            "last_name": "Martin",
            "email": "claire.martin@example.org",
        },
    }


@dataclass
class Feed:
    """Talks to directory_sync as order_intake and an operator do, and watches its events."""

    channel: AbstractChannel
    exchange: str
    spy: EventSpy
    feed_dir: Path

    async def send(self, topic: str, data: dict[str, Any], correlationid: str) -> None:
        event = cloudevent(
            data, event_id=str(uuid.uuid4()), event_type=topic, correlationid=correlationid
        )
        await publish_raw(self.channel, self.exchange, topic, json.dumps(event).encode())

    async def open_school(self, uai: str, academie: str | None = "Grenoble") -> dict[str, Any]:
        data = school_initialised(uai, academie)
        await self.send(topics.SCHOOL_INITIALISED, data, data["order_id"])
        return data

    async def request(self, uai: str, *, dry_run: bool = False) -> str:
        request_id = f"req-{uuid.uuid4().hex[:8]}"
        data = {"request_id": request_id, "requested_by": "ops", "uai": uai, "dry_run": dry_run}
        await self.send(topics.DIRECTORY_SYNC_REQUESTED, data, request_id)
        return request_id

    async def approve(self, uai: str, run_id: str, by: str = "Opérateur Dupont") -> str:
        request_id = f"req-{uuid.uuid4().hex[:8]}"
        data = {"request_id": request_id, "approved_by": by, "uai": uai, "run_id": run_id}
        await self.send(topics.DIRECTORY_SYNC_APPROVE_REQUESTED, data, request_id)
        return request_id

    async def revert(self, uai: str, run_id: str, by: str = "Opérateur Dupont") -> str:
        request_id = f"req-{uuid.uuid4().hex[:8]}"
        data = {"request_id": request_id, "requested_by": by, "uai": uai, "run_id": run_id}
        await self.send(topics.DIRECTORY_SYNC_REVERT_REQUESTED, data, request_id)
        return request_id

    async def answer(self, correlationid: str, topic: str) -> dict[str, Any]:
        """The one ``topic`` event of ``correlationid`` (a request, or an order)."""
        found = await self._of(correlationid, topic)
        assert len(found) == 1, found
        return found[0]["data"]

    async def _of(self, correlationid: str, topic: str) -> list[dict[str, Any]]:
        async def found() -> list[dict[str, Any]] | None:
            events = [e for e in self.spy.of_type(topic) if e["correlationid"] == correlationid]
            return events or None

        return await eventually(found, what=f"{topic} of {correlationid}")

    async def reported(self, correlationid: str) -> dict[str, Any]:
        return await self.answer(correlationid, topics.DIRECTORY_SYNC_REPORTED)

    def synced(self, run_id: str) -> list[dict[str, Any]]:
        chunks = self.spy.of_type(topics.DIRECTORY_SYNCED, run_id=run_id)
        return sorted((e["data"] for e in chunks), key=lambda c: c["chunk"])

    def all_synced(self, uai: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.spy.of_type(topics.DIRECTORY_SYNCED, uai=uai)]


class Clock:
    """A time the test moves, and how often each replica looked at it."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.looks: list[int] = []

    def replica(self) -> Callable[[], datetime]:
        self.looks.append(0)
        index = len(self.looks) - 1

        def look() -> datetime:
            self.looks[index] += 1
            return self.now

        return look
