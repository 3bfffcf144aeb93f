"""Every line a worker prints is JSON: its own lines and the libraries' (asyncpg, aio-pika
log through the standard library, with reconnects and tracebacks during outages)."""

import json
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import logging
    from shared.logs import configure, get_logger

    configure("order_intake")
    get_logger("shared.test").info("ours", activation_code="abcd3456", count=2)
    try:
        raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 5432)")
    except ConnectionRefusedError:
        logging.getLogger("asyncpg.pool").exception("Failed to restore the pool")
    logging.getLogger("aiormq.connection").info("reconnecting")  # below its level
    logging.getLogger("aio_pika.robust_connection").warning("Connection attempt failed")
    """
)


def run() -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]  # fails on any non-JSON line


def test_library_lines_are_json_with_the_service_and_the_traceback():
    ours, pool, broker = run()
    assert ours["event"] == "ours" and ours["activation_code"] == "***" and ours["count"] == 2
    assert pool["logger"] == "asyncpg.pool" and pool["level"] == "error"
    assert pool["service"] == "order_intake" and pool["event"] == "Failed to restore the pool"
    assert "ConnectionRefusedError" in pool["exception"]
    assert broker["level"] == "warning" and broker["logger"] == "aio_pika.robust_connection"
