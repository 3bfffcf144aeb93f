"""Worker processes that parse and compare drops, so that a replica uses more than one core
(parsing and comparing a school is pure Python, and the GIL keeps threads on one core).

Spawned, not forked: the parent runs an event loop and threads. Each child watches its
parent: should the worker die without shutting them down (SIGKILL, the OOM killer), they
exit within a second instead of waiting forever on their call queue, holding the worker's
output open. Each child collects garbage as the workers do (``shared.runtime.tune_gc``).
"""

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from shared.runtime import tune_gc

PARENT_CHECK_SECONDS = 1.0


def start_child(parent: int) -> None:
    """Run in each child at its start. Parsing a drop builds thousands of objects: with
    CPython's default thresholds the collector ran through them many times a school
    (compute of a school alone: 7.4 -> 6.5 ms in a 1 % run, 8.5 -> 6.2 ms in a first
    import, once tuned). Then the watch on ``parent``."""
    tune_gc()
    exit_with_parent(parent)


def exit_with_parent(parent: int) -> None:
    """A thread that ends this process once ``parent`` is gone (the process is then
    adopted by another)."""

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
        initializer=start_child,
        initargs=(os.getpid(),),
    )
