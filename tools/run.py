"""``make run``: the four workers in the foreground against local services, with a local
SMTP sink writing what they send to ``out/``. Ctrl-C drains and stops them all."""

import asyncio
import signal
from pathlib import Path

from onectl.broker import apply_topology
from onectl.config import OnectlSettings
from shared import topics
from shared.settings import OPS_PORTS
from tools import smtp_sink
from tools.workers import WorkerProcess


async def run() -> None:
    controller, _ = smtp_sink.start(Path("out"), port=1025)
    print("SMTP sink on 127.0.0.1:1025, mails in out/mail, PDFs in out/pdf", flush=True)
    ports = {name: OPS_PORTS[name] for name in topics.WORKERS}  # each worker's default
    workers = [
        WorkerProcess(name, {"ONE_OPS_PORT": str(ports[name])}, echo=True)
        for name in topics.WORKERS
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        applied = await apply_topology(OnectlSettings())  # the deploy step, as compose runs it
        print(f"Topology applied ({len(applied.declared)} objects)", flush=True)
        await asyncio.gather(*(w.start() for w in workers))
        print("All four workers are running; publish on the 'one.events' exchange.", flush=True)
        for name, port in ports.items():
            print(f"  {name}: http://127.0.0.1:{port}/healthz, /readyz, /metrics", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(w.stop() for w in workers))
        controller.stop()


if __name__ == "__main__":
    asyncio.run(run())
