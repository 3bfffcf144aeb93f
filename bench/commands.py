"""Account creation by command: 10,000 accounts created through
``accounts.create.requested`` (10 per command, a class's worth at a time), with one and
with two account_manager replicas.

Prints accounts/s and the latency from request to ``accounts.created`` (p50, p99) with
every command published at once (the throughput; its latency is the queue's length), then
with one replica at an offered pace (``--rate``, 2,000 accounts/s: the latency a school
waits at that load), and,
as a baseline measured in the same run, the rows/s of a raw COPY of as many account rows
into a bare table.

    python -m bench.commands [--accounts 10000] [--per-command 10]
"""

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aio_pika

from bench.common import (
    Namespace,
    envelope,
    pct,
    raw_copy_rows_per_s,
    ready,
    running,
    spying,
)
from shared import topics
from shared.contracts.common import uai_check_letter
from shared.envelope import CONTENT_TYPE
from tools.waits import eventually
from tools.workers import WorkerProcess

FIRST = [
    "Zoé",
    "Léo",
    "Inès",
    "Jules",
    "Chloé",
    "Noé",
    "Lucie",
    "Gabriel",
    "Anaïs",
    "Raphaël",
    "Éloïse",
    "Adam",
    "Manon",
    "Hugo",
    "Maëlle",
    "Louis",
    "Clémence",
    "Arthur",
    "Léna",
    "Théo",
    "Jade",
    "Nathan",
    "Camille",
    "Timéo",
    "Sarah",
    "Ethan",
    "Lina",
    "Maxime",
    "Agathe",
    "Sacha",
    "Emma",
    "Victor",
    "Rose",
    "Mathis",
    "Louise",
    "Enzo",
    "Alice",
    "Tom",
    "Léonie",
    "Axel",
]
LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guérin",
    "Muller",
    "Henry",
    "Roussel",
    "Nicolas",
    "Perrin",
    "Morin",
    "Mathieu",
    "Clément",
    "Gauthier",
    "Dumont",
    "Lopez",
    "Fontaine",
    "Chevalier",
    "Robin",
    "N'Diaye",
]
SCHOOLS = 10


def pupil(i: int, class_id: str) -> dict[str, Any]:
    return {
        "profile": "student",
        "first_name": FIRST[i % len(FIRST)],
        "last_name": LAST[(i // len(FIRST)) % len(LAST)],
        "birth_date": str(date(2016, 1, 1) + timedelta(days=i // (len(FIRST) * len(LAST)))),
        "class_ids": [class_id],
    }


async def run_once(
    replicas: int, accounts: int, per_command: int, rate: float | None = None
) -> dict[str, Any]:
    """``rate``: accounts/s offered, the commands published at that pace (the latency a
    school waits at that load); none: all at once (the throughput)."""
    ns = Namespace()
    workers = {
        f"account_manager#{i + 1}": WorkerProcess(topics.ACCOUNT_MANAGER, ns.env())
        for i in range(replicas)
    }
    seen: dict[str, tuple[float, dict[str, Any]]] = {}
    try:
        async with (
            running(workers) as watch,
            spying(
                ns.exchange,
                (topics.ACCOUNTS_CREATED, topics.CLASSES_CREATED, topics.COMMAND_REJECTED),
            ) as (exchange, spy),
        ):

            async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                event = json.loads(message.body)
                seen.setdefault(
                    f"{event['type']}:{event['correlationid']}", (time.monotonic(), event)
                )

            await spy.consume(record, no_ack=True)

            async def publish(topic: str, data: dict[str, Any], correlationid: str) -> None:
                await exchange.publish(
                    aio_pika.Message(
                        envelope(topic, data, correlationid),
                        content_type=CONTENT_TYPE,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=topic,
                )

            schools = []
            for n in range(SCHOOLS):
                school_id, digits = str(uuid.uuid4()), f"075{n:04d}"
                await publish(
                    topics.SCHOOL_INITIALISED,
                    {
                        "school_id": school_id,
                        "order_id": f"BC-{n}",
                        "uai": digits + uai_check_letter(digits),
                        "name": f"École {n}",
                        "academie": None,
                        "department": "075",
                        "provisioning": "manual",
                        "classes": 10,
                        "administrator": {
                            "first_name": "Claire",
                            "last_name": "Martin",
                            "email": "claire@example.org",
                        },
                    },
                    f"BC-{n}",
                )
                schools.append(school_id)
            await eventually(
                lambda: ready(sum(k.startswith("classes.created") for k in seen) == SCHOOLS),
                timeout=60,
                what="schools opened",
            )
            await eventually(
                lambda: ready(sum(k.startswith("accounts.created") for k in seen) == SCHOOLS),
                timeout=60,
                what="administrators created",
            )
            admins = {
                e["data"]["school_id"]: e["data"]["accounts"][0]["account_id"]
                for _, e in seen.values()
                if e["type"] == topics.ACCOUNTS_CREATED
            }
            classes = {
                e["data"]["school_id"]: [c["class_id"] for c in e["data"]["classes"]]
                for _, e in seen.values()
                if e["type"] == topics.CLASSES_CREATED
            }

            commands = accounts // per_command
            sent: dict[str, float] = {}
            started = time.monotonic()
            for c in range(commands):
                school = schools[c % SCHOOLS]
                class_id = classes[school][(c // SCHOOLS) % len(classes[school])]
                request = f"req-{c}"
                if rate:  # open loop: each command at its time, whatever the answers
                    await asyncio.sleep(
                        max(0.0, started + c * per_command / rate - time.monotonic())
                    )
                sent[request] = time.monotonic()
                await publish(
                    topics.ACCOUNTS_CREATE_REQUESTED,
                    {
                        "request_id": request,
                        "requested_by": admins[school],
                        "school_id": school,
                        "accounts": [
                            pupil(c * per_command + k, class_id) for k in range(per_command)
                        ],
                    },
                    request,
                )

            def answered() -> int:
                return sum(
                    1
                    for r in sent
                    if f"accounts.created:{r}" in seen or f"command.rejected:{r}" in seen
                )

            await eventually(
                lambda: ready(answered() == commands),
                timeout=900,
                interval=0.1,
                what="every command answered",
            )
            total = time.monotonic() - started
            latencies = [
                seen[f"accounts.created:{r}"][0] - t
                for r, t in sent.items()
                if f"accounts.created:{r}" in seen
            ]
            rejected = sum(1 for r in sent if f"command.rejected:{r}" in seen)
    finally:
        await ns.drop()
    return {
        "replicas": replicas,
        "offered": f"{rate:,.0f} accounts/s" if rate else "all at once",
        "accounts": commands * per_command,
        "commands": commands,
        "rejected": rejected,
        "total_s": total,
        "accounts_per_s": commands * per_command / total,
        "latency_p50_s": pct(latencies, 0.5),
        "latency_p99_s": pct(latencies, 0.99),
        "peak_rss_mib": {k: round(v, 1) for k, v in watch.peak.items()},
    }


ACCOUNT_COLUMNS = (
    "account_id uuid, school_id uuid, profile text, first_name text, last_name text,"
    " login text, birth_date date, activation_code text"
)


def account_records(rows: int) -> list[tuple[Any, ...]]:
    """As many account-like rows as the commands create, for the raw COPY baseline."""
    school = uuid.uuid4()
    return [
        (
            uuid.uuid4(),
            school,
            "student",
            p["first_name"],
            p["last_name"],
            f"login{i}",
            date.fromisoformat(p["birth_date"]),
            "abcd3456",
        )
        for i, p in ((i, pupil(i, "")) for i in range(rows))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--per-command", type=int, default=10)
    parser.add_argument(
        "--rate", type=float, default=2_000, help="accounts/s offered in the paced run"
    )
    args = parser.parse_args()
    runs = [(1, None), (2, None), (1, args.rate)]
    results = [asyncio.run(run_once(n, args.accounts, args.per_command, r)) for n, r in runs]
    copy_rate = asyncio.run(raw_copy_rows_per_s(ACCOUNT_COLUMNS, account_records(args.accounts)))
    print(
        f"\nAccount creation by command — {args.accounts} accounts, {args.per_command} per "
        f"command, {SCHOOLS} schools, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"  {'replicas':<10}{'commands':<22}{'accounts/s':>12}{'p50 (s)':>10}{'p99 (s)':>10}"
        f"{'rejected':>10}{'÷ raw COPY':>12}   peak RSS (MiB)"
    )
    for r in results:
        print(
            f"  {r['replicas']:<10}{r['offered']:<22}{r['accounts_per_s']:>12.0f}"
            f"{r['latency_p50_s']:>10.2f}{r['latency_p99_s']:>10.2f}{r['rejected']:>10}"
            f"{r['accounts_per_s'] / copy_rate:>12.4f}   {r['peak_rss_mib']}"
        )
    print(f"  baseline: raw COPY of {args.accounts} account rows: {copy_rate:.0f} rows/s")
    print(
        f"  scaling 2 replicas ÷ 1: "
        f"{results[1]['accounts_per_s'] / results[0]['accounts_per_s']:.2f}"
    )


if __name__ == "__main__":
    main()
