"""Read-only queries over the views each worker keeps for operators in its ``<worker>_ops``
schema, made by its migrations and readable by the role ``one_ops``. No query here names
a worker's own tables (tests/unit/test_onectl_views.py holds it so): each names its views
in full, with their version, as ``account_manager_ops.accounts_v1``."""

import contextlib
import json
import re
import unicodedata
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import asyncpg

from onectl.config import OnectlSettings
from onectl.errors import not_found, unreachable
from shared import topics
from shared.db import ops_schema
from shared.settings import without_password

UAI_RE = re.compile(r"^\d{7}[A-Z]$")
# A view as a query names it: its worker's _ops schema, its name, its version.
VIEW_RE = re.compile(r"\b[a-z_]+_ops\.[a-z_]+_v\d+\b")


class Reader:
    """One read-only connection, and which operators' views exist in the database."""

    def __init__(self, conn: "asyncpg.Connection[Any]", views: set[str]) -> None:
        self.conn = conn
        self.views = views

    def can_read(self, query: str) -> bool:
        """Whether every view ``query`` names exists (its worker ran, at a version that
        has it)."""
        return set(VIEW_RE.findall(query)) <= self.views

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """``query``'s rows; nothing when a view it names is missing, as when that worker
        never ran."""
        if not self.can_read(query):
            return []
        return [dict(r) for r in await self.conn.fetch(query, *args)]

    async def row(self, query: str, *args: Any) -> dict[str, Any] | None:
        found = await self.rows(query, *args)
        return found[0] if found else None

    async def value(self, query: str, *args: Any) -> Any:
        found = await self.row(query, *args)
        return next(iter(found.values())) if found else None


@contextlib.asynccontextmanager
async def reader(settings: OnectlSettings) -> AsyncIterator[Reader]:
    url = settings.reader_url
    try:
        conn = await asyncpg.connect(url, timeout=settings.connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise unreachable(f"Postgres unreachable ({without_password(url)}): {exc}") from exc
    try:
        await conn.execute("SET default_transaction_read_only = on")
        for codec in ("json", "jsonb"):
            await conn.set_type_codec(
                codec, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )
        yield Reader(conn, await _ops_views(conn))
    finally:
        await conn.close()


async def _ops_views(conn: "asyncpg.Connection[Any]") -> set[str]:
    found = await conn.fetch(
        "SELECT n.nspname || '.' || c.relname AS view FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'v' AND n.nspname = ANY($1::text[])",
        [ops_schema(worker) for worker in topics.WORKERS],
    )
    return {r["view"] for r in found}


# ---------------------------------------------------------------------------------------
# Which school
# ---------------------------------------------------------------------------------------


def looks_like_uai(key: str) -> bool:
    return bool(UAI_RE.match(key.strip().upper()))


async def find_school(db: Reader, key: str) -> dict[str, Any]:
    """The school a UAI, a school id or an order id names; ``not_found`` (with the
    rejection's reasons when the order was refused) otherwise."""
    if looks_like_uai(key):
        uai = key.strip().upper()
        school = await _school_by_uai(db, uai)
        if school is None:
            raise not_found(f"no school with UAI {uai}")
        return school
    school = await _school_by_id(db, key) if _is_uuid(key) else None
    school = school or await _school_by_order(db, key)
    if school is not None:
        return school
    rejected = await db.row(
        "SELECT reasons, rejected_at FROM order_intake_ops.rejections_v1 WHERE order_id = $1"
        " ORDER BY rejected_at DESC LIMIT 1",
        key,
    )
    if rejected is not None:
        raise not_found(f"order {key} was rejected", details={"reasons": rejected["reasons"]})
    raise not_found(f"no school with UAI or order id {key!r}")


async def _school_by_uai(db: Reader, uai: str) -> dict[str, Any] | None:
    """As the order made it, else as account_manager or the feed know it."""
    return (
        await db.row(
            "SELECT school_id, uai, name, provisioning, order_id"
            " FROM order_intake_ops.schools_v1 WHERE uai = $1",
            uai,
        )
        or await db.row(
            "SELECT school_id, uai, name, provisioning, NULL AS order_id"
            " FROM account_manager_ops.schools_v1 WHERE uai = $1",
            uai,
        )
        or await db.row(
            "SELECT school_id, uai, name, 'automatic' AS provisioning, order_id"
            " FROM directory_sync_ops.feed_registrations_v1 WHERE uai = $1",
            uai,
        )
    )


async def _school_by_id(db: Reader, school_id: str) -> dict[str, Any] | None:
    """A school id, as every event names it."""
    return await db.row(
        "SELECT school_id, uai, name, provisioning, NULL AS order_id"
        " FROM account_manager_ops.schools_v1 WHERE school_id = $1::uuid",
        school_id,
    )


async def _school_by_order(db: Reader, order_id: str) -> dict[str, Any] | None:
    return await db.row(
        "SELECT s.school_id, s.uai, s.name, s.provisioning, o.order_id"
        " FROM order_intake_ops.orders_v1 o JOIN order_intake_ops.schools_v1 s"
        " USING (school_id) WHERE o.order_id = $1",
        order_id,
    )


# ---------------------------------------------------------------------------------------
# Status: the guide's three steps
# ---------------------------------------------------------------------------------------


def item(
    key: str,
    label: str,
    done: bool,
    count: int | None = None,
    total: int | None = None,
    **more: Any,
) -> dict[str, Any]:
    return {"key": key, "label": label, "done": done, "count": count, "total": total, **more}


async def school_status(db: Reader, key: str) -> dict[str, Any]:
    school = await find_school(db, key)
    sid = school["school_id"]
    steps = [
        _step("opening", "Demander l'ouverture de mon espace ONE", await _opening(db, sid)),
        _step(
            "accounts",
            "Créer les classes et les comptes des utilisateurs (enseignants, parents et élèves)",
            await _accounts(db, sid, fed=school["provisioning"] == "automatic"),
        ),
        _step(
            "credentials",
            "Distribuer les informations de connexion aux utilisateurs",
            await _credentials(db, sid),
        ),
    ]
    return {
        "school": {**school, "school_id": str(sid)},
        "steps": steps,
        "ready": all(s["done"] for s in steps),
    }


def _step(key: str, title: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"key": key, "title": title, "done": all(i["done"] for i in items), "items": items}


async def _count(db: Reader, query: str, *args: Any) -> int:
    """A ``count(*)`` query's answer; 0 when its worker never ran."""
    return int(await db.value(query, *args) or 0)


async def _deliveries(db: Reader, school_id: Any, kinds: list[str]) -> dict[str, int]:
    rows = await db.rows(
        "SELECT status, count(*) AS n FROM credential_dispatch_ops.deliveries_v1"
        " WHERE school_id = $1 AND kind = ANY($2::text[]) GROUP BY status",
        school_id,
        kinds,
    )
    counts = {"sent": 0, "pending": 0, "failed": 0}
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


# Step 1: the order, the space, the administrator's access, the invoice.


async def _opening(db: Reader, sid: Any) -> list[dict[str, Any]]:
    return [
        await _order_received(db, sid),
        await _space_initialised(db, sid),
        await _administrator_access_sent(db, sid),
        await _invoice_sent(db, sid),
    ]


async def _order_received(db: Reader, sid: Any) -> dict[str, Any]:
    orders = await db.rows(
        "SELECT order_id, received_at FROM order_intake_ops.orders_v1 WHERE school_id = $1",
        sid,
    )
    return item(
        "order_received",
        "Bon de commande reçu",
        bool(orders),
        len(orders),
        orders=[o["order_id"] for o in orders],
    )


async def _space_initialised(db: Reader, sid: Any) -> dict[str, Any]:
    space = await db.row(
        "SELECT created_at FROM account_manager_ops.schools_v1 WHERE school_id = $1", sid
    )
    return item(
        "space_initialised",
        "Espace initialisé par l'équipe ONE",
        space is not None,
        1 if space else 0,
    )


async def _administrator_access_sent(db: Reader, sid: Any) -> dict[str, Any]:
    access = await _deliveries(db, sid, ["first_access"])
    return item(
        "administrator_access_sent",
        "Premier accès envoyé à l'administrateur",
        access["sent"] > 0,
        access["sent"],
        pending=access["pending"],
        failed=access["failed"],
    )


async def _invoice_sent(db: Reader, sid: Any) -> dict[str, Any]:
    invoice = await _deliveries(db, sid, ["invoice"])
    invoices = await db.rows(
        "SELECT invoice_number FROM order_intake_ops.invoices_v1 WHERE school_id = $1 ORDER BY 1",
        sid,
    )
    return item(
        "invoice_sent",
        "Facture envoyée à l'adresse de facturation",
        invoice["sent"] > 0,
        invoice["sent"],
        pending=invoice["pending"],
        failed=invoice["failed"],
        invoices=[i["invoice_number"] for i in invoices],
    )


# Step 2: the feed (a school fed from ONDE), classes, accounts, teachers in their classes.


async def _accounts(db: Reader, sid: Any, *, fed: bool) -> list[dict[str, Any]]:
    per_profile = await _active_per_profile(db, sid)
    items = [
        await _classes_created(db, sid),
        await _accounts_created(db, sid, per_profile),
        await _teachers_attached(db, sid, per_profile.get("teacher", 0)),
    ]
    return [await _directory_synced(db, sid), *items] if fed else items


async def _active_per_profile(db: Reader, sid: Any) -> dict[str, int]:
    rows = await db.rows(
        "SELECT profile, count(*) AS n FROM account_manager_ops.school_accounts_v1"
        " WHERE school_id = $1 AND deactivated_at IS NULL GROUP BY profile ORDER BY profile",
        sid,
    )
    return {r["profile"]: r["n"] for r in rows}


async def _classes_created(db: Reader, sid: Any) -> dict[str, Any]:
    classes = await _count(
        db, "SELECT count(*) FROM account_manager_ops.classes_v1 WHERE school_id = $1", sid
    )
    return item("classes_created", "Classes créées", classes > 0, classes)


async def _accounts_created(db: Reader, sid: Any, per_profile: dict[str, int]) -> dict[str, Any]:
    deactivated = await _count(
        db,
        "SELECT count(*) FROM account_manager_ops.school_accounts_v1"
        " WHERE school_id = $1 AND deactivated_at IS NOT NULL",
        sid,
    )
    shared = await _count(
        db,
        "SELECT count(*) FROM account_manager_ops.school_accounts_v1"
        " WHERE school_id = $1 AND shared AND deactivated_at IS NULL",
        sid,
    )
    users = sum(n for profile, n in per_profile.items() if profile != "administrator")
    return item(
        "accounts_created",
        "Comptes créés (enseignants, parents, élèves)",
        users > 0,
        users,
        per_profile=per_profile,
        deactivated=deactivated,
        shared=shared,
    )


async def _teachers_attached(db: Reader, sid: Any, teachers: int) -> dict[str, Any]:
    attached = await _count(
        db,
        "SELECT count(DISTINCT a.account_id) FROM account_manager_ops.school_accounts_v1 a"
        " JOIN account_manager_ops.class_teachers_v1 t USING (account_id)"
        " WHERE a.school_id = $1 AND a.profile = 'teacher' AND a.deactivated_at IS NULL",
        sid,
    )
    return item(
        "teachers_attached",
        "Enseignants rattachés à leurs classes",
        teachers > 0 and attached == teachers,
        attached,
        teachers,
    )


async def _directory_synced(db: Reader, sid: Any) -> dict[str, Any]:
    last = await db.row(
        "SELECT run_id, status, state, created_at, finished_at"
        " FROM directory_sync_ops.sync_runs_v1"
        " WHERE school_id = $1 AND NOT dry_run ORDER BY created_at DESC LIMIT 1",
        sid,
    )
    synced = await _count(
        db,
        "SELECT count(*) FROM directory_sync_ops.sync_runs_v1 WHERE school_id = $1"
        " AND status IN ('applied', 'unchanged') AND NOT dry_run",
        sid,
    )
    return item(
        "directory_synced", "Annuaire ONDE synchronisé", bool(synced), synced, last_run=last
    )


# Step 3: sheets handed out, accounts activated.


async def _credentials(db: Reader, sid: Any) -> list[dict[str, Any]]:
    return [await _sheets_dispatched(db, sid), await _accounts_activated(db, sid)]


async def _sheets_dispatched(db: Reader, sid: Any) -> dict[str, Any]:
    sheets = await _deliveries(db, sid, ["sheet", "print"])
    requests = await _count(
        db,
        "SELECT count(*) FROM credential_dispatch_ops.dispatches_v1"
        " WHERE school_id = $1 AND purpose = 'request'",
        sid,
    )
    return item(
        "sheets_dispatched",
        "Fiches de connexion distribuées",
        sheets["sent"] > 0,
        sheets["sent"],
        requests=requests,
        pending=sheets["pending"],
        failed=sheets["failed"],
    )


async def _accounts_activated(db: Reader, sid: Any) -> dict[str, Any]:
    activation = await db.row(
        "SELECT count(*) FILTER (WHERE activated_at IS NOT NULL) AS activated,"
        " count(*) AS total FROM account_manager_ops.school_accounts_v1"
        " WHERE school_id = $1 AND deactivated_at IS NULL",
        sid,
    ) or {"activated": 0, "total": 0}
    return item(
        "accounts_activated",
        "Comptes activés",
        activation["total"] > 0 and activation["activated"] == activation["total"],
        activation["activated"],
        activation["total"],
    )


# ---------------------------------------------------------------------------------------
# Trace
# ---------------------------------------------------------------------------------------


# Each worker's outbox and inbox, from its own views (one query per worker).
SENT = "message_id, topic, causationid, created_at, published_at"
OUTBOXES = {
    topics.ORDER_INTAKE: f"SELECT {SENT} FROM order_intake_ops.outbox_v1",
    topics.DIRECTORY_SYNC: f"SELECT {SENT} FROM directory_sync_ops.outbox_v1",
    topics.ACCOUNT_MANAGER: f"SELECT {SENT} FROM account_manager_ops.outbox_v1",
    topics.CREDENTIAL_DISPATCH: f"SELECT {SENT} FROM credential_dispatch_ops.outbox_v1",
}
GOT = "message_id, topic, received_at"
INBOXES = {
    topics.ORDER_INTAKE: f"SELECT {GOT} FROM order_intake_ops.inbox_v1",
    topics.DIRECTORY_SYNC: f"SELECT {GOT} FROM directory_sync_ops.inbox_v1",
    topics.ACCOUNT_MANAGER: f"SELECT {GOT} FROM account_manager_ops.inbox_v1",
    topics.CREDENTIAL_DISPATCH: f"SELECT {GOT} FROM credential_dispatch_ops.inbox_v1",
}


async def trace(db: Reader, correlationid: str) -> list[dict[str, Any]]:
    """Every message of a conversation: what each worker published (its outbox) and which
    of those (and the message that started it) each worker received (its inbox)."""
    sent = await _published(db, correlationid)
    if not sent:
        raise not_found(f"no message with correlation id {correlationid!r}")
    ids = sorted(
        {r["message_id"] for r in sent} | {r["causationid"] for r in sent if r["causationid"]}
    )
    timeline = sent + await _received(db, ids)
    # Receipts before publications at the same instant: a handler's events are written in
    # the transaction that records its receipt.
    timeline.sort(key=lambda e: (e["at"], e["action"] == "published"))
    return timeline


async def _published(db: Reader, correlationid: str) -> list[dict[str, Any]]:
    return [
        {"action": "published", "worker": worker, "at": row["created_at"], **row}
        for worker in topics.WORKERS
        for row in await db.rows(OUTBOXES[worker] + " WHERE correlationid = $1", correlationid)
    ]


async def _received(db: Reader, ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "action": "received",
            "worker": worker,
            "at": row["received_at"],
            "message_id": row["message_id"],
            "topic": row["topic"],
            "causationid": None,
            "created_at": None,
            "published_at": None,
        }
        for worker in topics.WORKERS
        for row in await db.rows(INBOXES[worker] + " WHERE message_id = ANY($1::text[])", ids)
    ]


# ---------------------------------------------------------------------------------------
# The feed
# ---------------------------------------------------------------------------------------

RUN_COLUMNS = (
    "run_id, trigger, request_id, requested_by, dry_run, state, status, counts, errors, "
    "warnings, hold_reasons, approved_by, approved_at, attempts, last_error, created_at, "
    "finished_at, turnover"
)


async def sync_runs(db: Reader, uai: str, limit: int) -> list[dict[str, Any]]:
    registered = await db.row(
        "SELECT school_id FROM directory_sync_ops.feed_registrations_v1 WHERE uai = $1", uai
    )
    if registered is None:
        raise not_found(f"no school fed from ONDE has UAI {uai}")
    runs = await db.rows(
        f"SELECT {RUN_COLUMNS} FROM directory_sync_ops.sync_runs_v1 WHERE uai = $1"
        " ORDER BY created_at DESC LIMIT $2",
        uai,
        limit,
    )
    return await with_findings(db, runs)


async def with_findings(db: Reader, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run with what account_manager decided applying it (issue 22), as
    ``across_schools``: how many persons of another school it attached, and its new
    accounts whose names alone are another school's account's (the two ids)."""
    rows = await db.rows(
        "SELECT run_id, kind, account_id, other_account_id"
        " FROM account_manager_ops.feed_run_findings_v1 WHERE run_id = ANY($1::uuid[])"
        " ORDER BY run_id, kind, account_id",
        [r["run_id"] for r in runs],
    )
    for run in runs:
        found = [r for r in rows if r["run_id"] == run["run_id"]]
        run["across_schools"] = {
            "attached": sum(1 for r in found if r["kind"] == "attached"),
            "possible_duplicates": [
                {"account_id": str(r["account_id"]), "other_account_id": str(r["other_account_id"])}
                for r in found
                if r["kind"] == "possible_duplicate"
            ],
        }
    return runs


async def sync_run(db: Reader, run_id: Any) -> dict[str, Any] | None:
    return await db.row(
        f"SELECT uai, {RUN_COLUMNS} FROM directory_sync_ops.sync_runs_v1 WHERE run_id = $1",
        run_id,
    )


async def academie_named(db: Reader, name: str) -> str:
    """The académie of the registrations that ``name`` names, whatever its case or
    accents' spelling (``nancy-metz``, ``Nancy-Metz``)."""
    known = [
        r["academie"]
        for r in await db.rows(
            "SELECT DISTINCT academie FROM directory_sync_ops.feed_registrations_v1"
            " WHERE academie IS NOT NULL ORDER BY 1",
        )
    ]
    wanted = _folded(name)
    for academie in known:
        if _folded(academie) == wanted:
            return str(academie)
    raise not_found(
        f"no school fed from ONDE in académie {name!r}",
        details={"academies": known},
    )


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum())


async def night_runs(db: Reader, academie: str, night: date) -> list[dict[str, Any]]:
    """The runs of an académie's night (the nightly scheduler's, one per school), with
    each school's UAI and name: held first, then rejected, then the rest, by UAI."""
    runs = await db.rows(
        f"SELECT r.uai, f.name, {_prefixed('r', RUN_COLUMNS)}"
        " FROM directory_sync_ops.sync_runs_v1 r"
        " JOIN directory_sync_ops.feed_registrations_v1 f USING (school_id)"
        " WHERE r.trigger = 'nightly' AND r.correlationid = $1"
        " ORDER BY CASE r.status WHEN 'held' THEN 0 WHEN 'rejected' THEN 1 ELSE 2 END, r.uai",
        f"nightly:{night.isoformat()}:{academie}",
    )
    if not runs:
        raise not_found(f"no nightly run of {academie} on the night of {night.isoformat()}")
    return await with_findings(db, runs)


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


async def last_applied_run(db: Reader, uai: str) -> Any:
    """The run that made the school's snapshot: the only one that can be undone."""
    return await db.value(
        "SELECT s.run_id FROM directory_sync_ops.feed_snapshots_v1 s"
        " JOIN directory_sync_ops.feed_registrations_v1 r USING (school_id) WHERE r.uai = $1",
        uai,
    )


def jsonable(value: Any) -> Any:
    """Rows as JSON: uuids, times and decimals as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ---------------------------------------------------------------------------------------
# Audit of credential hand-outs
# ---------------------------------------------------------------------------------------


async def audit(db: Reader, key: str, account_id: str | None = None) -> dict[str, Any]:
    """Every hand-out of credentials of a school (or of one of its accounts), newest first:
    who asked, for whom, how, what was delivered, and the requests refused. No code."""
    school = await find_school(db, key)
    if account_id is not None and not _is_uuid(account_id):
        raise not_found(f"{account_id!r} is not an account id")
    entries = await db.rows(
        "SELECT at, purpose, request_id, requested_by, requester_profile, accounts, channel,"
        " layout, document_id, refused, completed_at, delivered, undeliverable"
        " FROM credential_dispatch_ops.audit_v1 WHERE school_id = $1"
        " AND ($2::uuid IS NULL OR $2::uuid = ANY(accounts) OR requested_by = $2::uuid)"
        " ORDER BY at DESC",
        school["school_id"],
        account_id,
    )
    return {"uai": school["uai"], "school": school["name"], "entries": entries}


def _is_uuid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}", text))
