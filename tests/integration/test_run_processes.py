"""directory_sync's worker processes do not outlive their worker: a SIGKILL of the worker
alone (no process group, nothing shut down) leaves no process parsing drops behind, nor
holding the worker's output open."""

import asyncio
import os
import signal
import sys
import textwrap

import psutil

from tools.waits import eventually

# A worker in miniature: its pool computes once (so the child exists), then it waits.
WORKER = textwrap.dedent(
    """
    import os, time
    from services.directory_sync.processes import run_processes
    pool = run_processes(1)
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(600)
    """
)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_worker_processes_exit_when_their_worker_is_killed():
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, stdout=asyncio.subprocess.PIPE
    )
    assert worker.stdout is not None
    child = int(await asyncio.wait_for(worker.stdout.readline(), 60))
    assert psutil.Process(child).ppid() == worker.pid
    os.kill(worker.pid, signal.SIGKILL)

    async def child_gone() -> bool:
        return gone(child)

    await eventually(child_gone, timeout=10, what="the worker process exiting")
    # The child held the worker's output open too (asyncio's wait() waits for it: a
    # supervisor's wait would hang): it is closed now.
    assert await asyncio.wait_for(worker.stdout.read(), 5) == b""
    assert await asyncio.wait_for(worker.wait(), 5) == -signal.SIGKILL


def test_worker_processes_collect_garbage_as_the_workers_do():
    from services.directory_sync.processes import run_processes
    from shared.runtime import GC_THRESHOLDS

    pool = run_processes(1)
    assert pool is not None
    try:
        assert pool.submit(gc_thresholds).result(timeout=60) == GC_THRESHOLDS
    finally:
        pool.shutdown()


def gc_thresholds() -> tuple[int, int, int]:
    import gc

    return gc.get_threshold()
