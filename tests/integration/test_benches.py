"""Every benchmark still runs: each at its smallest size, on the local services, to the end
of its report. A benchmark is only run by hand (``make bench``), so a change that breaks
one would otherwise go unseen until someone wants its figures."""

import subprocess
import sys

import pytest

from tests.support.services import Services
from tools.workers import ROOT

pytestmark = pytest.mark.slow

# Each benchmark at its smallest, and a line its report ends with (its figures were printed).
SMALLEST = {
    "orders": (["--orders", "5"], "ratio ms per order ÷ bare page.pdf ms"),
    "commands": (
        ["--accounts", "40", "--per-command", "20", "--rate", "200"],
        "scaling 2 replicas ÷ 1",
    ),
    "sheets": (["--quick"], "baseline: bare Chromium page.pdf"),
    "feed": (["--schools", "2"], "target rentree printable"),
    "feed_apply": (["--chunks", "2"], "statements a chunk"),
    "floor": (["--schools", "2"], "index entries a person"),
    "dispatch_copy": (["--messages", "4"], "raw COPY   turn 2"),
    "facturx": (["--invoices", "2"], "turn 2: one at a time"),
}


@pytest.mark.parametrize("bench", sorted(SMALLEST))
def test_the_benchmark_runs_to_its_figures(bench: str, services: Services) -> None:
    if (services.pg_host, services.pg_port) != ("127.0.0.1", 5432):
        pytest.skip("the benchmarks run against the local services (bench/common.py)")
    arguments, last_figure = SMALLEST[bench]
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_figure in done.stdout, done.stdout[-3000:]
