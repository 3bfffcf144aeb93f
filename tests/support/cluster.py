"""The three-node RabbitMQ cluster of scripts/cluster.sh, for the tests that lose a node.

Started once per session (idempotent: nodes already up are kept). Where RabbitMQ's own
programs are missing and cannot be installed the tests skip, except under ``CI=true``.
"""

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tools.workers import ROOT

SCRIPT = ROOT / "scripts" / "cluster.sh"
NODES = (1, 2, 3)


@dataclass(frozen=True)
class BrokerCluster:
    urls: tuple[str, ...]

    @property
    def amqp_urls(self) -> str:
        return ",".join(self.urls)

    def url(self, node: int) -> str:
        return self.urls[node - 1]

    def port(self, node: int) -> int:
        return int(self.url(node).rsplit(":", 1)[1].split("/")[0])

    async def stop_node(self, node: int) -> None:
        await _script("stop", str(node))

    async def start_node(self, node: int) -> None:
        await _script("start-node", str(node))

    async def ensure_all(self) -> None:
        await _script("start")

    async def queues(self) -> dict[str, dict[str, object]]:
        """Each queue's leader node (1-3) and its members (node numbers), as node 1 says."""
        out = await _script("queues")
        found = {}
        for row in json.loads(out):
            found[row["name"]] = {
                "leader": _number(row.get("leader")),
                "members": sorted(_number(m) for m in row.get("members") or []),
            }
        return found


def _number(node: object) -> int:
    # one-cluster-2@localhost -> 2
    return int(str(node).split("@")[0].rsplit("-", 1)[1]) if node else 0


async def _script(*args: str, timeout: float = 240.0) -> str:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    if process.returncode != 0:
        raise AssertionError(f"cluster.sh {' '.join(args)}: {err.decode()}{out.decode()}")
    return out.decode()


def start_cluster() -> BrokerCluster:
    if not (shutil.which("rabbitmq-server") or os.path.exists("/usr/lib/rabbitmq/bin")):
        message = "no RabbitMQ programs to start a local cluster (scripts/cluster.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"scripts/cluster.sh start: {done.stderr}{done.stdout}"
    urls = subprocess.run([str(SCRIPT), "urls"], capture_output=True, text=True, check=True)
    return BrokerCluster(tuple(urls.stdout.strip().split(",")))
