"""One person across schools (issue 22) end to end, through the four worker processes: a
maternelle and an élémentaire of Haute-Savoie fed by ONDE. A mother with a child in each
(same names and email) is one account in both, printed by each school with its own child;
a homonym father without email stays two accounts, with a warning in the second school's
report; at la rentrée the GS pupil who leaves the maternelle and arrives in CP keeps his
account, login and activation, and his mother follows him. Two account_manager replicas
applying both schools' first imports at once still make one account of each parent."""

import json
import uuid
from typing import Any

from aio_pika.abc import AbstractChannel

from shared import topics
from tests.e2e.conftest import SCHOOL_NOT_KNOWN_YET, Pipeline, every_account
from tests.e2e.test_rentree import activate, report_of, request_run
from tests.support.broker import EventSpy, publish_raw
from tests.support.feed import Adult, Drop, Kid, Staff
from tests.support.onectl import Cli
from tests.support.orders import cloudevent, order_data, uai
from tests.support.pdf import pdf_text, stored_document
from tools.waits import eventually
from tools.workers import WorkerProcess

MATERNELLE, ELEMENTAIRE = 4501, 4502
ANNE = ("Anne", "DURAND", "anne.durand@example.org")
PAUL = ("Paul", "MARTIN")  # no email in either export
LEA = Kid("Léa", "DURAND", "09/10/2020", "GS Étoile", ine="2020000042L")
HUGO = Kid("Hugo", "DURAND", "02/03/2018", "CE1 Corail", ine="2018000017H")
YANIS = Kid("Yanis", "VERT", "11/12/2020", "GS Étoile", ine="2020000005Y")  # never activated


def _family(kids: list[Kid], *, anne: tuple[Kid, ...] = (), paul: Kid | None = None) -> list:
    """A parent per child (his own email), but Anne for ``anne`` and Paul for ``paul``."""
    adults = [
        Adult(f"Parent{k.first}", k.last, f"{k.last.lower()}.{k.first.lower()}@example.org", (k,))
        for k in kids
        if k not in anne and k != paul
    ]
    if anne:
        adults.append(Adult(*ANNE, anne))
    if paul is not None:
        adults.append(Adult(*PAUL, "", (paul,)))
    return adults


def _teachers(classes: list[str], domain: str) -> list[Staff]:
    names = [("Marie", "CURIE"), ("Paul", "LANGEVIN"), ("Irène", "JOLIOT")]
    return [
        Staff(first, last, f"{first.lower()}.{last.lower()}@{domain}", cls, director=i == 0)
        for i, ((first, last), cls) in enumerate(zip(names, classes, strict=True))
    ]


def maternelle(september: bool = False) -> Drop:
    tom = Kid("Tom", "MARTIN", "01/02/2022", "MS Soleil", ine="2022000003T")
    others = [
        Kid("Nina", "BLANC", "03/04/2023", "PS Lune", ine="2023000001N"),
        Kid("Omar", "NOIR", "05/06/2023", "PS Lune", ine="2023000002O"),
        Kid("Ève", "ROUGE", "07/08/2022", "MS Soleil", ine="2022000004E"),
        YANIS,
    ]
    classes = ["PS Lune", "MS Soleil", "GS Étoile"]
    if not september:
        kids = [*others, tom, LEA]
        return Drop(kids, _family(kids, anne=(LEA,), paul=tom), _teachers(classes, "m.org"))
    up = {"PS Lune": "MS Soleil", "MS Soleil": "GS Étoile"}
    kids = [k.moved(up[k.cls]) for k in [*others, tom] if k.cls in up]  # the GS gone
    # One new PS for two GS gone: a smaller pupils file, not held at la rentrée.
    kids.append(Kid("Lina", "JAUNE", "02/02/2024", "PS Lune", ine="2024000006L"))
    tom = next(k for k in kids if k.first == "Tom")
    return Drop(kids, _family(kids, paul=tom), _teachers(classes, "m.org"))


def elementaire(september: bool = False) -> Drop:
    zoe = Kid("Zoé", "MARTIN", "04/05/2019", "CP Azur", ine="2019000011Z")
    others = [
        Kid("Inès", "BLEU", "06/07/2019", "CP Azur", ine="2019000012I"),
        Kid("Malo", "GRIS", "08/09/2018", "CE1 Corail", ine="2018000013M"),
    ]
    classes = ["CP Azur", "CE1 Corail", "CE2 Jade"]
    if not september:
        kids = [*others, zoe, HUGO]
        return Drop(kids, _family(kids, anne=(HUGO,), paul=zoe), _teachers(classes, "e.org"))
    up = {"CP Azur": "CE1 Corail", "CE1 Corail": "CE2 Jade"}
    kids = [k.moved(up[k.cls]) for k in [*others, zoe, HUGO]]
    lea = LEA.moved("CP Azur")
    kids += [lea, YANIS.moved("CP Azur")]
    hugo, zoe = kids[3], kids[2]
    return Drop(kids, _family(kids, anne=(lea, hugo), paul=zoe), _teachers(classes, "e.org"))


async def order(pipeline: Pipeline, channel: AbstractChannel, number: int) -> None:
    data = order_data(f"BC-ACROSS-{number}", number=number, admin_email=f"direction{number}@x.org")
    event = cloudevent(data, event_id=f"o-across-{number}")
    await publish_raw(
        channel, pipeline.stack.exchange, "order.received", json.dumps(event).encode()
    )


async def applied_run(spy: EventSpy, school_uai: str, nth: int = 1) -> dict[str, Any]:
    """The ``nth`` directory.sync.applied of the school, once its run is applied whole."""
    found = await spy.wait_for(topics.DIRECTORY_SYNC_APPLIED, count=nth, timeout=90, uai=school_uai)
    data: dict[str, Any] = found[nth - 1]["data"]
    return data


async def accounts_named(pipeline: Pipeline, first: str, last: str) -> list[dict[str, Any]]:
    conn = await pipeline.stack.admin()
    try:
        rows = await conn.fetch(
            "SELECT a.account_id, a.school_id, a.login, a.activation_code, a.activated_at,"
            " a.deactivated_at,"
            " array(SELECT s.school_id FROM account_manager.account_schools s"
            "       WHERE s.account_id = a.account_id) AS attached,"
            " array(SELECT c.first_name FROM account_manager.parent_children p"
            "       JOIN account_manager.accounts c ON c.account_id = p.child_id"
            "       WHERE p.parent_id = a.account_id ORDER BY 1) AS children"
            " FROM account_manager.accounts a WHERE a.first_name = $1 AND a.last_name = $2",
            first,
            last,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def printed_sheet(
    pipeline: Pipeline, spy: EventSpy, channel: AbstractChannel, school_id: str, account_id: Any
) -> str:
    """The detailed sheet of one account as the school's administrator prints it."""
    admin = next(
        a
        for e in spy.of_type(topics.ACCOUNTS_CREATED, school_id=school_id)
        for a in e["data"]["accounts"]
        if a["profile"] == "administrator"
    )
    request_id = f"print-{uuid.uuid4()}"
    data = {
        "request_id": request_id,
        "requested_by": admin["account_id"],
        "school_id": school_id,
        "account_ids": [str(account_id)],
        "channel": "print",
        "layout": "detailed",
    }
    command = cloudevent(
        data,
        event_id=request_id,
        event_type=topics.CREDENTIALS_DISPATCH_REQUESTED,
        correlationid=request_id,
    )
    await publish_raw(
        channel,
        pipeline.stack.exchange,
        topics.CREDENTIALS_DISPATCH_REQUESTED,
        json.dumps(command).encode(),
    )
    [done] = await spy.wait_for(topics.CREDENTIALS_DISPATCHED, timeout=60, request_id=request_id)
    pdf = await stored_document(pipeline.stack, done["data"]["document_id"])
    return "\n".join(pdf_text(pdf))


async def test_a_family_across_a_maternelle_and_an_elementaire_over_two_years(
    pipeline: Pipeline, channel: AbstractChannel
):
    m_uai, e_uai = uai("074", MATERNELLE), uai("074", ELEMENTAIRE)
    maternelle().write(pipeline.feed_dir, m_uai)
    elementaire().write(pipeline.feed_dir, e_uai)
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    await order(pipeline, channel, MATERNELLE)
    in_m = await applied_run(spy, m_uai)
    assert in_m["counts"] == {"attached": 0, "possible_duplicates": 0}
    await every_account(spy, maternelle().persons)
    await order(pipeline, channel, ELEMENTAIRE)

    # The élémentaire's first import: Anne found, Paul not (no email), and said so.
    in_e = await applied_run(spy, e_uai)
    m_id, e_id = in_m["school_id"], in_e["school_id"]
    assert in_e["counts"] == {"attached": 1, "possible_duplicates": 1}
    [warning] = in_e["warnings"]
    assert warning["message"].startswith("possible duplicate: parent Paul MARTIN has the names")
    await eventually(pipeline.quiescent, timeout=60, what="both imports settled")
    [anne] = await accounts_named(pipeline, "Anne", "DURAND")
    assert (str(anne["school_id"]), [str(s) for s in anne["attached"]]) == (m_id, [e_id])
    assert anne["children"] == ["Hugo", "Léa"]
    pauls = await accounts_named(pipeline, *PAUL)
    assert sorted(str(p["school_id"]) for p in pauls) == sorted([m_id, e_id])
    assert all(p["attached"] == [] for p in pauls)

    # Each school prints Anne's one login and code, with its own child only.
    in_m_sheet = await printed_sheet(pipeline, spy, channel, m_id, anne["account_id"])
    in_e_sheet = await printed_sheet(pipeline, spy, channel, e_id, anne["account_id"])
    assert "Léa" in in_m_sheet and "Hugo" not in in_m_sheet
    assert "Hugo" in in_e_sheet and "Léa" not in in_e_sheet
    for sheet in (in_m_sheet, in_e_sheet):
        assert anne["login"] in sheet and anne["activation_code"] in sheet

    # The operators' view: the run's report and each school's shared accounts.
    cli = Cli(pipeline.stack)
    report = await cli.json("sync", "report", e_uai)
    assert report["runs"][0]["across_schools"]["attached"] == 1
    [pair] = report["runs"][0]["across_schools"]["possible_duplicates"]
    assert {pair["account_id"], pair["other_account_id"]} == {str(p["account_id"]) for p in pauls}
    code, text, _ = await cli("sync", "report", e_uai)
    assert code == 0 and "attached from another school: 1 person(s)" in text
    for key in (m_uai, e_uai):
        status = await cli.json("status", key)
        [created] = [
            i for s in status["steps"] for i in s["items"] if i["key"] == "accounts_created"
        ]
        assert created["shared"] == 1, created  # Anne
    e_status = await cli.json("status", e_uai)
    [e_created] = [
        i for s in e_status["steps"] for i in s["items"] if i["key"] == "accounts_created"
    ]
    assert e_created["per_profile"]["relative"] == len(elementaire().adults)

    # La rentrée. Léa activated her account in June; she leaves the maternelle's GS...
    [lea] = await accounts_named(pipeline, "Léa", "DURAND")
    await activate(pipeline, channel, lea["account_id"])
    [yanis] = await accounts_named(pipeline, "Yanis", "VERT")
    [yanis_parent] = await accounts_named(pipeline, "ParentYanis", "VERT")
    for school_uai in (m_uai, e_uai):
        for old in (pipeline.feed_dir / school_uai).iterdir():
            old.unlink()
    maternelle(september=True).write(pipeline.feed_dir, m_uai)
    m_report = await report_of(spy, await request_run(pipeline, channel, m_uai))
    assert (m_report["status"], m_report["turnover"]) == ("applied", True), json.dumps(m_report)
    await applied_run(spy, m_uai, nth=2)
    await eventually(pipeline.quiescent, timeout=60, what="the maternelle's rentrée settled")
    [gone] = await accounts_named(pipeline, "Léa", "DURAND")
    assert gone["deactivated_at"] is not None  # kept for another school to take back
    [anne] = await accounts_named(pipeline, "Anne", "DURAND")
    assert (str(anne["school_id"]), anne["attached"]) == (e_id, [])  # her home is E now
    [detached] = spy.of_type(topics.ACCOUNTS_DETACHED, school_id=m_id)
    assert [a["account_id"] for a in detached["data"]["accounts"]] == [str(anne["account_id"])]

    # ... and arrives in the élémentaire's CP: the same account, login and activation.
    elementaire(september=True).write(pipeline.feed_dir, e_uai)
    september = await request_run(pipeline, channel, e_uai)
    e_report = await report_of(spy, september)
    assert (e_report["status"], e_report["turnover"]) == ("applied", True), e_report
    again = await applied_run(spy, e_uai, nth=2)
    assert again["counts"] == {"attached": 3, "possible_duplicates": 0}  # Léa, Yanis, his mother
    await eventually(pipeline.quiescent, timeout=60, what="the élémentaire's rentrée settled")
    [back] = await accounts_named(pipeline, "Léa", "DURAND")
    assert (back["account_id"], back["login"]) == (lea["account_id"], lea["login"])
    assert back["activated_at"] is not None and back["deactivated_at"] is None
    assert str(back["school_id"]) == e_id
    [anne] = await accounts_named(pipeline, "Anne", "DURAND")
    assert anne["children"] == ["Hugo", "Léa"]
    sheet = await printed_sheet(pipeline, spy, channel, e_id, anne["account_id"])
    assert "Léa" in sheet and "Hugo" in sheet
    made = [e for e in spy.of_type(topics.ACCOUNTS_CREATED) if e["correlationid"] == september]
    assert made == []  # nobody new in the élémentaire: Léa, Yanis, his mother are who they were
    # Yanis never activated: his code died with his leaving, the élémentaire prints a new one.
    [yanis_now] = await accounts_named(pipeline, "Yanis", "VERT")
    [parent_now] = await accounts_named(pipeline, "ParentYanis", "VERT")
    assert (yanis_now["account_id"], yanis_now["login"]) == (yanis["account_id"], yanis["login"])
    assert parent_now["account_id"] == yanis_parent["account_id"]
    assert parent_now["children"] == ["Yanis"] and str(parent_now["school_id"]) == e_id
    code = yanis_now["activation_code"]
    assert code is not None and code != yanis["activation_code"]
    sheet = await printed_sheet(pipeline, spy, channel, e_id, yanis["account_id"])
    assert code in sheet and yanis["activation_code"] not in sheet
    assert pipeline.troubles(besides=(SCHOOL_NOT_KNOWN_YET,)) == []


FAMILIES = 24


async def test_two_replicas_importing_two_schools_at_once_make_one_account_a_parent(
    pipeline: Pipeline, channel: AbstractChannel
):
    """Each of ``FAMILIES`` parents has a child in each school; both schools' first imports
    run at once, applied by two account_manager replicas."""
    second = WorkerProcess(topics.ACCOUNT_MANAGER, pipeline.workers[topics.ACCOUNT_MANAGER].env)
    await second.start()
    try:
        numbers = (4511, 4512)
        for index, number in enumerate(numbers):
            kids = [
                Kid(f"Enfant{n}", f"FAMILLE{n}", f"0{index + 1}/03/201{index + 7}", "CP A")
                for n in range(FAMILIES)
            ]
            adults = [
                Adult("Parent", f"FAMILLE{n}", f"famille{n}@example.org", (kid,))
                for n, kid in enumerate(kids)
            ]
            staff = [Staff("Marie", "CURIE", f"marie{number}@example.org", "CP A", director=True)]
            Drop(kids, adults, staff).write(pipeline.feed_dir, uai("074", number))
        spy = EventSpy()
        await spy.start(channel, pipeline.stack.exchange)
        for number in numbers:
            await order(pipeline, channel, number)
        applied = [await applied_run(spy, uai("074", number)) for number in numbers]
        await eventually(pipeline.quiescent, timeout=60, what="both imports settled")
        conn = await pipeline.stack.admin()
        try:
            parents = await conn.fetch(
                "SELECT a.account_id, (SELECT count(*) FROM account_manager.account_schools s"
                " WHERE s.account_id = a.account_id) AS others"
                " FROM account_manager.accounts a WHERE a.first_name = 'Parent'"
            )
        finally:
            await conn.close()
        assert len(parents) == FAMILIES  # one account each, not two
        assert all(p["others"] == 1 for p in parents)
        assert sum(a["counts"]["attached"] for a in applied) == FAMILIES
    finally:
        await second.stop()
