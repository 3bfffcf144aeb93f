"""Read-only queries over the workers' schemas (one database, one schema per worker)."""

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
from shared.settings import without_password

UAI_RE = re.compile(r"^\d{7}[A-Z]$")


class Reader:
    """One read-only connection, and which worker schemas exist in the database."""

    def __init__(self, conn: "asyncpg.Connection[Any]", schemas: set[str]) -> None:
        self.conn = conn
        self.schemas = schemas

    def has(self, schema: str) -> bool:
        return schema in self.schemas

    async def rows(self, schema: str, query: str, *args: Any) -> list[dict[str, Any]]:
        """``query`` with ``{s}`` as the schema; nothing when that worker never ran."""
        if not self.has(schema):
            return []
        return [dict(r) for r in await self.conn.fetch(query.format(s=schema), *args)]

    async def row(self, schema: str, query: str, *args: Any) -> dict[str, Any] | None:
        found = await self.rows(schema, query, *args)
        return found[0] if found else None

    async def value(self, schema: str, query: str, *args: Any) -> Any:
        found = await self.row(schema, query, *args)
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
        present = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])",
            list(topics.WORKERS),
        )
        yield Reader(conn, {r["nspname"] for r in present})
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------
# Which school
# ---------------------------------------------------------------------------------------


def looks_like_uai(key: str) -> bool:
    return bool(UAI_RE.match(key.strip().upper()))


async def find_school(db: Reader, key: str) -> dict[str, Any]:
    """The school a UAI or an order id names; ``not_found`` (with the rejection's reasons
    when the order was refused) otherwise."""
    oi, am, ds = topics.ORDER_INTAKE, topics.ACCOUNT_MANAGER, topics.DIRECTORY_SYNC
    if looks_like_uai(key):
        uai = key.strip().upper()
        school = await db.row(
            oi,
            "SELECT school_id, uai, name, provisioning, order_id FROM {s}.schools WHERE uai = $1",
            uai,
        )
        school = school or await db.row(
            am,
            "SELECT school_id, uai, name, provisioning, NULL AS order_id FROM {s}.schools "
            "WHERE uai = $1",
            uai,
        )
        school = school or await db.row(
            ds,
            "SELECT school_id, uai, name, 'automatic' AS provisioning, order_id "
            "FROM {s}.feed_registrations WHERE uai = $1",
            uai,
        )
        if school is None:
            raise not_found(f"no school with UAI {uai}")
        return school
    if _is_uuid(key):  # a school id, as every event names it
        school = await db.row(
            am,
            "SELECT school_id, uai, name, provisioning, NULL AS order_id FROM {s}.schools "
            "WHERE school_id = $1::uuid",
            key,
        )
        if school is not None:
            return school
    school = await db.row(
        oi,
        "SELECT s.school_id, s.uai, s.name, s.provisioning, o.order_id FROM {s}.orders o "
        "JOIN {s}.schools s USING (school_id) WHERE o.order_id = $1",
        key,
    )
    if school is not None:
        return school
    rejected = await db.row(
        oi,
        "SELECT reasons, rejected_at FROM {s}.rejections WHERE order_id = $1 "
        "ORDER BY rejected_at DESC LIMIT 1",
        key,
    )
    if rejected is not None:
        raise not_found(f"order {key} was rejected", details={"reasons": rejected["reasons"]})
    raise not_found(f"no school with UAI or order id {key!r}")


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


async def _deliveries(db: Reader, school_id: Any, kinds: list[str]) -> dict[str, int]:
    rows = await db.rows(
        topics.CREDENTIAL_DISPATCH,
        "SELECT v.status, count(*) AS n FROM {s}.deliveries v "
        "JOIN {s}.dispatches d USING (dispatch_id) "
        "WHERE d.school_id = $1 AND v.kind = ANY($2::text[]) GROUP BY v.status",
        school_id,
        kinds,
    )
    counts = {"sent": 0, "pending": 0, "failed": 0}
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


async def school_status(db: Reader, key: str) -> dict[str, Any]:
    school = await find_school(db, key)
    sid = school["school_id"]
    oi, am, ds = topics.ORDER_INTAKE, topics.ACCOUNT_MANAGER, topics.DIRECTORY_SYNC

    orders = await db.rows(
        oi, "SELECT order_id, received_at FROM {s}.orders WHERE school_id = $1", sid
    )
    space = await db.row(am, "SELECT created_at FROM {s}.schools WHERE school_id = $1", sid)
    invoices = await db.rows(
        oi, "SELECT invoice_number FROM {s}.invoices WHERE school_id = $1 ORDER BY 1", sid
    )
    access = await _deliveries(db, sid, ["first_access"])
    invoice = await _deliveries(db, sid, ["invoice"])
    opening = [
        item(
            "order_received",
            "Bon de commande reçu",
            bool(orders),
            len(orders),
            orders=[o["order_id"] for o in orders],
        ),
        item(
            "space_initialised",
            "Espace initialisé par l'équipe ONE",
            space is not None,
            1 if space else 0,
        ),
        item(
            "administrator_access_sent",
            "Premier accès envoyé à l'administrateur",
            access["sent"] > 0,
            access["sent"],
            pending=access["pending"],
            failed=access["failed"],
        ),
        item(
            "invoice_sent",
            "Facture envoyée à l'adresse de facturation",
            invoice["sent"] > 0,
            invoice["sent"],
            pending=invoice["pending"],
            failed=invoice["failed"],
            invoices=[i["invoice_number"] for i in invoices],
        ),
    ]

    classes = await db.value(am, "SELECT count(*) FROM {s}.classes WHERE school_id = $1", sid) or 0
    per_profile = {
        r["profile"]: r["n"]
        for r in await db.rows(
            am,
            "SELECT profile, count(*) AS n FROM {s}.accounts "
            "WHERE school_id = $1 AND deactivated_at IS NULL GROUP BY profile ORDER BY profile",
            sid,
        )
    }
    deactivated = (
        await db.value(
            am,
            "SELECT count(*) FROM {s}.accounts WHERE school_id = $1 AND deactivated_at IS NOT NULL",
            sid,
        )
        or 0
    )
    teachers = per_profile.get("teacher", 0)
    attached = (
        await db.value(
            am,
            "SELECT count(DISTINCT a.account_id) FROM {s}.accounts a "
            "JOIN {s}.class_teachers t USING (account_id) "
            "WHERE a.school_id = $1 AND a.profile = 'teacher' AND a.deactivated_at IS NULL",
            sid,
        )
        or 0
    )
    users = sum(n for profile, n in per_profile.items() if profile != "administrator")
    accounts = [
        item("classes_created", "Classes créées", classes > 0, classes),
        item(
            "accounts_created",
            "Comptes créés (enseignants, parents, élèves)",
            users > 0,
            users,
            per_profile=per_profile,
            deactivated=deactivated,
        ),
        item(
            "teachers_attached",
            "Enseignants rattachés à leurs classes",
            teachers > 0 and attached == teachers,
            attached,
            teachers,
        ),
    ]
    if school["provisioning"] == "automatic":
        last = await db.row(
            ds,
            "SELECT run_id, status, state, created_at, finished_at FROM {s}.sync_runs "
            "WHERE school_id = $1 AND NOT dry_run ORDER BY created_at DESC LIMIT 1",
            sid,
        )
        synced = await db.value(
            ds,
            "SELECT count(*) FROM {s}.sync_runs WHERE school_id = $1 "
            "AND status IN ('applied', 'unchanged') AND NOT dry_run",
            sid,
        )
        accounts.insert(
            0,
            item(
                "directory_synced",
                "Annuaire ONDE synchronisé",
                bool(synced),
                synced or 0,
                last_run=last,
            ),
        )

    sheets = await _deliveries(db, sid, ["sheet", "print"])
    requests = (
        await db.value(
            topics.CREDENTIAL_DISPATCH,
            "SELECT count(*) FROM {s}.dispatches WHERE school_id = $1 AND purpose = 'request'",
            sid,
        )
        or 0
    )
    activation = await db.row(
        am,
        "SELECT count(*) FILTER (WHERE activated_at IS NOT NULL) AS activated, "
        "count(*) AS total FROM {s}.accounts WHERE school_id = $1 AND deactivated_at IS NULL",
        sid,
    ) or {"activated": 0, "total": 0}
    credentials = [
        item(
            "sheets_dispatched",
            "Fiches de connexion distribuées",
            sheets["sent"] > 0,
            sheets["sent"],
            requests=requests,
            pending=sheets["pending"],
            failed=sheets["failed"],
        ),
        item(
            "accounts_activated",
            "Comptes activés",
            activation["total"] > 0 and activation["activated"] == activation["total"],
            activation["activated"],
            activation["total"],
        ),
    ]
    steps = [
        _step("opening", "Demander l'ouverture de mon espace ONE", opening),
        _step(
            "accounts",
            "Créer les classes et les comptes des utilisateurs (enseignants, parents et élèves)",
            accounts,
        ),
        _step(
            "credentials", "Distribuer les informations de connexion aux utilisateurs", credentials
        ),
    ]
    return {
        "school": {**school, "school_id": str(sid)},
        "steps": steps,
        "ready": all(s["done"] for s in steps),
    }


def _step(key: str, title: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"key": key, "title": title, "done": all(i["done"] for i in items), "items": items}


# ---------------------------------------------------------------------------------------
# Trace
# ---------------------------------------------------------------------------------------


async def trace(db: Reader, correlationid: str) -> list[dict[str, Any]]:
    """Every message of a conversation: what each worker published (its outbox) and which
    of those (and the message that started it) each worker received (its inbox)."""
    sent: list[dict[str, Any]] = []
    for worker in topics.WORKERS:
        for row in await db.rows(
            worker,
            "SELECT message_id, topic, causationid, created_at, published_at "
            "FROM {s}.outbox WHERE correlationid = $1",
            correlationid,
        ):
            sent.append({"action": "published", "worker": worker, "at": row["created_at"], **row})
    if not sent:
        raise not_found(f"no message with correlation id {correlationid!r}")
    ids = sorted(
        {r["message_id"] for r in sent} | {r["causationid"] for r in sent if r["causationid"]}
    )
    received: list[dict[str, Any]] = []
    for worker in topics.WORKERS:
        for row in await db.rows(
            worker,
            "SELECT message_id, topic, received_at FROM {s}.inbox "
            "WHERE message_id = ANY($1::text[])",
            ids,
        ):
            received.append(
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
            )
    timeline = sent + received
    # Receipts before publications at the same instant: a handler's events are written in
    # the transaction that records its receipt.
    timeline.sort(key=lambda e: (e["at"], e["action"] == "published"))
    return timeline


# ---------------------------------------------------------------------------------------
# The feed
# ---------------------------------------------------------------------------------------

RUN_COLUMNS = (
    "run_id, trigger, request_id, requested_by, dry_run, state, status, counts, errors, "
    "warnings, hold_reasons, approved_by, approved_at, attempts, last_error, created_at, "
    "finished_at, turnover"
)


async def sync_runs(db: Reader, uai: str, limit: int) -> list[dict[str, Any]]:
    ds = topics.DIRECTORY_SYNC
    registered = await db.row(
        ds, "SELECT school_id FROM {s}.feed_registrations WHERE uai = $1", uai
    )
    if registered is None:
        raise not_found(f"no school fed from ONDE has UAI {uai}")
    return await db.rows(
        ds,
        f"SELECT {RUN_COLUMNS} FROM {{s}}.sync_runs WHERE uai = $1 "
        "ORDER BY created_at DESC LIMIT $2",
        uai,
        limit,
    )


async def sync_run(db: Reader, run_id: Any) -> dict[str, Any] | None:
    return await db.row(
        topics.DIRECTORY_SYNC,
        f"SELECT uai, {RUN_COLUMNS} FROM {{s}}.sync_runs WHERE run_id = $1",
        run_id,
    )


async def academie_named(db: Reader, name: str) -> str:
    """The académie of the registrations that ``name`` names, whatever its case or
    accents' spelling (``nancy-metz``, ``Nancy-Metz``)."""
    known = [
        r["academie"]
        for r in await db.rows(
            topics.DIRECTORY_SYNC,
            "SELECT DISTINCT academie FROM {s}.feed_registrations"
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
        topics.DIRECTORY_SYNC,
        f"SELECT r.uai, f.name, {_prefixed('r', RUN_COLUMNS)}"
        " FROM {s}.sync_runs r JOIN {s}.feed_registrations f USING (school_id)"
        " WHERE r.trigger = 'nightly' AND r.correlationid = $1"
        " ORDER BY CASE r.status WHEN 'held' THEN 0 WHEN 'rejected' THEN 1 ELSE 2 END, r.uai",
        f"nightly:{night.isoformat()}:{academie}",
    )
    if not runs:
        raise not_found(f"no nightly run of {academie} on the night of {night.isoformat()}")
    return runs


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


async def last_applied_run(db: Reader, uai: str) -> Any:
    """The run that made the school's snapshot: the only one that can be undone."""
    return await db.value(
        topics.DIRECTORY_SYNC,
        "SELECT s.run_id FROM {s}.feed_snapshots s"
        " JOIN {s}.feed_registrations r USING (school_id) WHERE r.uai = $1",
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
        topics.CREDENTIAL_DISPATCH,
        "SELECT at, purpose, request_id, requested_by, requester_profile, accounts, channel,"
        " layout, document_id, refused, completed_at, delivered, undeliverable"
        " FROM {s}.audit WHERE school_id = $1"
        " AND ($2::uuid IS NULL OR $2::uuid = ANY(accounts) OR requested_by = $2::uuid)"
        " ORDER BY at DESC",
        school["school_id"],
        account_id,
    )
    return {"uai": school["uai"], "school": school["name"], "entries": entries}


def _is_uuid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}", text))
