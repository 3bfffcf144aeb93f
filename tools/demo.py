"""The pipeline end to end on local services, in one command (``make demo``).

Starts a local SMTP sink and the four workers, publishes two purchase orders (a manual
school in Paris, an automatic one in Haute-Savoie whose ONDE export is already in the
feed folder), then shows what each step produced: the events on the exchange, the feed's
report, the emails caught, the PDFs written.
"""

import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from rich.console import Console
from rich.table import Table

from onectl.broker import apply_topology
from onectl.config import OnectlSettings
from shared import topics
from shared.contracts.common import uai_check_letter
from shared.envelope import CONTENT_TYPE
from shared.messaging import cluster
from shared.settings import CommonSettings
from tools import onde_generator, smtp_sink
from tools.waits import eventually
from tools.workers import WorkerProcess

console = Console(width=None if sys.stdout.isatty() else 140)
OUTCOMES = (topics.CREDENTIALS_DISPATCHED, topics.INVOICE_DELIVERED)


def sample_orders(stamp: str) -> list[dict[str, Any]]:
    def uai(department: str) -> str:
        digits = f"{department}{random.randint(0, 9999):04d}"
        return digits + uai_check_letter(digits)

    def order(
        order_id: str,
        school: dict[str, Any],
        admin: dict[str, str],
        billing: dict[str, Any],
        classes: int,
    ) -> dict[str, Any]:
        return {
            "order_id": order_id,
            "ordered_at": datetime.now(UTC).isoformat(),
            "school": school,
            "administrator": admin,
            "billing": billing,
            "classes": classes,
            "lines": [
                {
                    "sku": "ONE-SCHOOL-1Y",
                    "label": "Abonnement ONE — 1 an",
                    "quantity": 1,
                    "unit_price": "150.00",
                    "vat_rate": "0.20",
                },
                {
                    "sku": "ONE-TRAINING",
                    "label": "Formation à distance (2 h)",
                    "quantity": 2,
                    "unit_price": "45.50",
                    "vat_rate": "0.20",
                },
            ],
        }

    paris = {"line1": "12 rue de la Roquette", "postal_code": "75011", "city": "Paris"}
    annecy = {"line1": "1 rue du Lac", "postal_code": "74000", "city": "Annecy"}
    return [
        order(
            f"BC-{stamp}-P",
            {"uai": uai("075"), "name": "École élémentaire Jules-Ferry", "address": paris},
            {
                "first_name": "Jean-Noël",
                "last_name": "N'Diaye",
                "email": "jn.ndiaye@ecole-ferry.example.org",
            },
            {
                "name": "Mairie du 11e arrondissement",
                "email": "factures@mairie11.example.org",
                "address": paris,
                "order_reference": "EJ-2026-118",
            },
            classes=4,
        ),
        order(
            f"BC-{stamp}-A",
            {"uai": uai("074"), "name": "École primaire du Lac", "address": annecy},
            {
                "first_name": "Claire",
                "last_name": "Martin",
                "email": "claire.martin@ecole-lac.example.org",
            },
            {
                "name": "Mairie d'Annecy",
                "email": "factures@annecy.example.org",
                "address": annecy,
                "siret": "21740010600019",
            },
            classes=6,
        ),
    ]


def cloudevent(data: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"demo-{data['order_id']}",
            "source": "urn:one:demo",
            "type": topics.ORDER_RECEIVED,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "dataschema": f"urn:one:schema:{topics.ORDER_RECEIVED}:1",
            "correlationid": data["order_id"],
            "data": data,
        }
    ).encode()


async def run(out: Path) -> int:
    settings = CommonSettings()
    controller, sink = smtp_sink.start(out, port=1025)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    orders = sample_orders(datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
    feed = out / "feed"
    automatic = orders[1]["school"]["uai"]
    # As a director downloads it from ONDE today: CSVExtraction.csv, CSVExtraction(1).csv.
    onde_generator.write_drop(
        feed, automatic, classes=4, pupils_per_class=12, layout=onde_generator.LAYOUTS["2021"]
    )
    env = {"ONE_LOG_LEVEL": "INFO", "ONE_FEED_DIR": str(feed.resolve())}
    workers = [
        WorkerProcess(name, env, log_file=out / "logs" / f"{name}.log") for name in topics.WORKERS
    ]
    connection = await cluster.connect(settings.broker_addresses, name="demo")
    seen: list[tuple[float, dict[str, Any]]] = []
    try:
        console.rule("[bold]ONE onboarding — démonstration")
        console.print(f"Starting the four workers (logs in [cyan]{out / 'logs'}[/])…")
        await apply_topology(OnectlSettings())  # the deploy step, as compose runs it
        await asyncio.gather(*(w.start() for w in workers))
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.exchange)
        spy = await channel.declare_queue(exclusive=True, auto_delete=True)
        await spy.bind(exchange, routing_key="#")
        started = time.monotonic()

        async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append((time.monotonic() - started, json.loads(message.body)))

        await spy.consume(record, no_ack=True)
        console.print(f"ONDE export of school {automatic} written to [cyan]{feed / automatic}[/]")
        for data in orders:
            await exchange.publish(
                aio_pika.Message(
                    cloudevent(data),
                    content_type=CONTENT_TYPE,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=topics.ORDER_RECEIVED,
            )
            console.print(
                f"Published order [bold]{data['order_id']}[/] "
                f"({data['school']['name']}, UAI {data['school']['uai']})"
            )

        async def finished() -> bool:
            done = {e["correlationid"] for _, e in seen if e["type"] in OUTCOMES}
            synced = any(e["type"] == topics.DIRECTORY_SYNC_REPORTED for _, e in seen)
            return (
                synced
                and all(o["order_id"] in done for o in orders)
                and sum(1 for _, e in seen if e["type"] in OUTCOMES) >= 2 * len(orders)
            )

        await eventually(finished, timeout=90, interval=0.1, what="both orders handled")
        await asyncio.sleep(0.3)
        for data in orders:
            show_order(data, [(t, e) for t, e in seen if e["correlationid"] == data["order_id"]])
        show_mail(sink, out)
        return 0
    finally:
        await connection.close()
        await asyncio.gather(*(w.stop() for w in workers))
        controller.stop()


def show_order(order: dict[str, Any], events: list[tuple[float, dict[str, Any]]]) -> None:
    table = Table(title=f"{order['order_id']} — {order['school']['name']}", title_justify="left")
    table.add_column("t (ms)", justify="right")
    table.add_column("event")
    table.add_column("from")
    table.add_column("what it says")
    for offset, event in events:
        table.add_row(
            f"{offset * 1000:.0f}",
            event["type"],
            event["source"].rsplit(":", 1)[-1],
            summary(event),
        )
    console.print(table)


def summary(event: dict[str, Any]) -> str:
    data = event["data"]
    match event["type"]:
        case topics.ORDER_RECEIVED:
            return f"{data['classes']} classes, {len(data['lines'])} lines"
        case topics.SCHOOL_INITIALISED:
            return f"school {data['uai']}, {data['provisioning']}" + (
                f" (académie {data['academie']})" if data.get("academie") else ""
            )
        case topics.INVOICE_ISSUED:
            return f"{data['invoice_number']}: {data['total_incl_tax']} € TTC"
        case topics.CLASSES_CREATED:
            return ", ".join(c["name"] for c in data["classes"])
        case topics.ACCOUNTS_CREATED:
            shown = ", ".join(f"{a['profile']} {a['login']}" for a in data["accounts"][:3])
            more = len(data["accounts"]) - 3
            return shown + (f" and {more} more" if more > 0 else "")
        case topics.DIRECTORY_SYNC_REPORTED:
            counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items())
            warnings = len(data["warnings"])
            noted = f"; {warnings} warning(s) for the school to check" if warnings else ""
            return f"ONDE feed of {data['uai']}: {data['status']} ({counts}{noted})"
        case topics.DIRECTORY_SYNC_APPLIED:
            counts = data["counts"]
            return (
                f"run applied: {counts['attached']} from another school of ONE, "
                f"{counts['possible_duplicates']} possible duplicate(s)"
            )
        case topics.DIRECTORY_SYNCED:
            return f"chunk {data['chunk'] + 1}/{data['chunks']}: {len(data['created'])} new"
        case topics.CREDENTIALS_DISPATCHED:
            return f"{data['channel']}: delivered to " + ", ".join(
                d["to"] for d in data["delivered"]
            )
        case topics.INVOICE_DELIVERED:
            return f"{data['invoice_number']} → {data['to']}"
        case topics.ORDER_REJECTED:
            return "; ".join(f"{r['field']}: {r['message']}" for r in data["reasons"])
    return ""


def show_mail(sink: smtp_sink.FileSink, out: Path) -> None:
    table = Table(title="Emails caught by the local SMTP sink", title_justify="left")
    table.add_column("to")
    table.add_column("subject")
    table.add_column("attachments")
    for message in sink.received:
        table.add_row(
            str(message["To"]),
            str(message["Subject"]),
            ", ".join(p.get_filename() or "" for p in message.iter_attachments()),
        )
    console.print(table)
    console.print(f"Emails: [cyan]{sink.mail_dir}[/]   PDFs: [cyan]{sink.pdf_dir}[/]")


def main() -> None:
    out = Path("out") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    raise SystemExit(asyncio.run(run(out)))


if __name__ == "__main__":
    main()
