"""Step 1 under load: 1,000 purchase orders published at once, measured until every
credentials.dispatched; then a single order on an idle system.

Prints total time, orders/s, order → administrator email latency (p50, p99), peak RSS
per worker (and of credential_dispatch's Chromium), with two baselines measured in the
same run: raw publish-with-confirm to the broker, and a bare Chromium page.pdf.

    python -m bench.orders [--orders 1000]
"""

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import psutil

from bench.common import (
    AMQP_URL,
    Namespace,
    bare_pdf_ms,
    envelope,
    pct,
    ready,
    report_rows,
    running,
)
from shared import topics
from shared.contracts.common import uai_check_letter
from shared.envelope import CONTENT_TYPE
from tools import smtp_sink
from tools.waits import eventually
from tools.workers import WorkerProcess


def order_event(i: int, tag: str) -> bytes:
    digits = f"{['074', '075', '057', '069'][i % 4]}{i % 10000:04d}"
    data: dict[str, Any] = {
        "order_id": f"BC-{tag}-{i:05d}",
        "ordered_at": datetime.now(UTC).isoformat(),
        "school": {
            "uai": digits + uai_check_letter(digits),
            "name": f"École n°{i}",
            "address": {"line1": f"{i} rue de l'École", "postal_code": "75011", "city": "Paris"},
        },
        "administrator": {
            "first_name": "Jean-Noël",
            "last_name": "N'Diaye",
            "email": f"admin{i}@bench.example.org",
        },
        "billing": {
            "name": f"Mairie {i}",
            "email": f"billing{i}@bench.example.org",
            "address": {"line1": "Place de la Mairie", "postal_code": "75011", "city": "Paris"},
        },
        "classes": 5,
        "lines": [
            {
                "sku": "ONE-SCHOOL-1Y",
                "label": "Abonnement ONE — 1 an",
                "quantity": 1,
                "unit_price": "150.00",
                "vat_rate": "0.20",
            }
        ],
    }
    return envelope(topics.ORDER_RECEIVED, data, data["order_id"])


async def raw_publish_rate(count: int) -> float:
    """Baseline: persistent publishes with confirms to a bare queue, as fast as it goes."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"bench.raw.{uuid.uuid4().hex[:6]}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        body = order_event(0, "raw")
        started = time.perf_counter()
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue.name,
                )
                for _ in range(count)
            )
        )
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
    return count / elapsed


async def run(count: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    ns = Namespace(tag)
    folder = Path(tempfile.mkdtemp(prefix="one-bench-"))
    port = 10025
    controller, sink = smtp_sink.start(folder, port=port)
    received_at: dict[str, float] = {}
    original = sink.handle_DATA

    async def timed(server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            received_at.setdefault(rcpt, time.monotonic())
        return await original(server, session, envelope)

    sink.handle_DATA = timed  # type: ignore[method-assign]
    env = ns.env(ONE_SMTP_PORT=str(port))
    workers = {name: WorkerProcess(name, env) for name in topics.WORKERS}
    results: dict[str, Any] = {"orders": count}
    try:
        async with running(workers) as watch:
            connection = await aio_pika.connect_robust(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.get_exchange(ns.exchange)
                outcomes: set[str] = set()
                spy = await channel.declare_queue(exclusive=True, auto_delete=True)
                await spy.bind(exchange, routing_key=topics.CREDENTIALS_DISPATCHED)

                async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                    outcomes.add(json.loads(message.body)["correlationid"])

                await spy.consume(record, no_ack=True)

                async def publish(numbers: range) -> dict[str, float]:
                    sent: dict[str, float] = {}
                    for i in numbers:
                        body = order_event(i, tag)
                        sent[f"admin{i}@bench.example.org"] = time.monotonic()
                        await exchange.publish(
                            aio_pika.Message(
                                body,
                                content_type=CONTENT_TYPE,
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=topics.ORDER_RECEIVED,
                        )
                    return sent

                # Load: every order published at once, measured until all are dispatched.
                started = time.monotonic()
                sent = await publish(range(count))
                await eventually(
                    lambda: ready(len(outcomes) >= count),
                    timeout=900,
                    interval=0.2,
                    what="all orders dispatched",
                )
                total = time.monotonic() - started
                latencies = [received_at[k] - sent[k] for k in sent if k in received_at]
                results.update(
                    total_s=total,
                    orders_per_s=count / total,
                    email_latency_p50_s=pct(latencies, 0.5),
                    email_latency_p99_s=pct(latencies, 0.99),
                )
                # Let the invoices still on their way go out: the next order is alone.
                await eventually(
                    lambda: ready(len(received_at) >= 2 * count),
                    timeout=600,
                    interval=0.2,
                    what="all invoices sent",
                )
                await asyncio.sleep(3)

                # Idle: one order, alone.
                single = await publish(range(count, count + 1))
                [(admin, published)] = single.items()
                await eventually(
                    lambda: ready(admin in received_at),
                    timeout=60,
                    interval=0.01,
                    what="single order's email",
                )
                results["single_order_email_s"] = received_at[admin] - published
    finally:
        controller.stop()
        await ns.drop()
    print("load measured:", json.dumps(results), flush=True)
    results["peak_rss_mib"] = {k: round(v, 1) for k, v in watch.peak.items()}
    results["chromium_peak_rss_mib"] = round(
        watch.children_peak.get(topics.CREDENTIAL_DISPATCH, 0.0), 1
    )
    results["cpu_seconds"] = {k: round(v, 1) for k, v in watch.cpu.items()}
    results["cpu_seconds"]["chromium"] = round(
        watch.children_cpu.get(topics.CREDENTIAL_DISPATCH, 0.0), 1
    )
    results["baseline_raw_publish_confirm_msgs_per_s"] = await raw_publish_rate(count)
    results["baseline_bare_page_pdf_ms"] = await bare_pdf_ms()
    return results


def report(r: dict[str, Any]) -> None:
    print(
        f"\nStep 1 benchmark — {r['orders']} orders, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{psutil.cpu_count()} cores"
    )
    rows = [
        ("total time (s)", f"{r['total_s']:.1f}", "≤ 180"),
        ("orders/s", f"{r['orders_per_s']:.1f}", ""),
        ("order → admin email p50 (s)", f"{r['email_latency_p50_s']:.2f}", ""),
        ("order → admin email p99 (s)", f"{r['email_latency_p99_s']:.2f}", ""),
        ("single order → admin email (s)", f"{r['single_order_email_s']:.2f}", "≤ 1.5"),
        *[(f"peak RSS {k} (MiB)", f"{v}", "< 300") for k, v in r["peak_rss_mib"].items()],
        ("peak PSS Chromium of credential_dispatch (MiB)", f"{r['chromium_peak_rss_mib']}", ""),
        *[(f"CPU seconds {k}", f"{v}", "") for k, v in r["cpu_seconds"].items()],
        (
            "baseline: raw publish+confirm (msgs/s)",
            f"{r['baseline_raw_publish_confirm_msgs_per_s']:.0f}",
            "",
        ),
        (
            "  ratio orders/s ÷ raw msgs/s",
            f"{r['orders_per_s'] / r['baseline_raw_publish_confirm_msgs_per_s']:.4f}",
            "",
        ),
        ("baseline: bare Chromium page.pdf (ms)", f"{r['baseline_bare_page_pdf_ms']:.1f}", ""),
        (
            "  ratio ms per order ÷ bare page.pdf ms",
            f"{1000 / r['orders_per_s'] / r['baseline_bare_page_pdf_ms']:.2f}",
            "",
        ),
    ]
    report_rows("orders", rows, r, widths=(48, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    args = parser.parse_args()
    report(asyncio.run(run(args.orders)))


if __name__ == "__main__":
    main()
