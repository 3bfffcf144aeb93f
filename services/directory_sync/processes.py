"""Worker processes that parse and compare drops, so that a replica uses more than one core
(a school is ~10 ms of pure Python, and the GIL keeps threads on one core).

Spawned, not forked: the parent runs an event loop and threads. Each child watches its
parent: should the worker die without shutting them down (SIGKILL, the OOM killer), they
exit within a second instead of waiting forever on their call queue, holding the worker's
output open.
"""

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

PARENT_CHECK_SECONDS = 1.0


def exit_with_parent(parent: int) -> None:
    """Run in each child at its start: a thread that ends the child once ``parent`` is gone
    (the child is then adopted by another process)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_processes(count: int) -> ProcessPoolExecutor | None:
    """``count`` worker processes, or None (0: runs are computed in threads of the worker)."""
    if count == 0:
        return None
    return ProcessPoolExecutor(
        count,
        mp_context=get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
