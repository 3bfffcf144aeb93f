"""Workers run as real processes (``python -m services.<name>``), as an operator runs them.

Used by ``make run``, the demo, the benchmarks and the end-to-end tests."""

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.waits import eventually

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class WorkerProcess:
    name: str
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    echo: bool = False  # also print each line, prefixed with the worker's name
    log_file: Path | None = None
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    _reader: asyncio.Task[None] | None = None

    async def start(self, *, wait_ready: bool = True) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"services.{self.name}",
            cwd=ROOT,
            # Several workers on one machine: each serves /healthz on a free port unless
            # told which (ONE_OPS_PORT).
            env={"ONE_OPS_PORT": "0", **os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a terminal Ctrl-C reaches us only; we send SIGTERM
        )
        self.starts += 1
        started_before = self.count("started")
        self._reader = asyncio.create_task(self._read(self.process))
        if wait_ready:
            await eventually(
                lambda: self._alive_and(started_before), timeout=60, what=f"{self.name} started"
            )

    async def _alive_and(self, started_before: int) -> bool:
        if self.process is not None and self.process.returncode is not None:
            tail = "\n".join(self.lines[-30:])
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{tail}")
        return self.count("started") > started_before

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        sink = self.log_file.open("a") if self.log_file else None
        try:
            async for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                if sink:
                    sink.write(line + "\n")
                    sink.flush()
                if self.echo:
                    print(f"{self.name:<20} {line}", flush=True)
        finally:
            if sink:
                sink.close()

    def records(self) -> list[dict[str, Any]]:
        parsed = []
        for line in self.lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                parsed.append({"event": "<not json>", "line": line})
        return parsed

    def count(self, event: str) -> int:
        return sum(1 for r in self.records() if r.get("event") == event)

    async def kill(self) -> None:
        """SIGKILL of the worker and of its own processes (its session: a container's or a
        systemd unit's whole group goes the same way): no drain, no goodbye."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        if self._reader:
            await self._reader

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the drain."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
        if self._reader:
            await self._reader
        return self.process.returncode or 0
