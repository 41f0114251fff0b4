"""How DataLoader worker processes start.

On Linux torch forks its workers: fast, but a fork copies the parent's memory as it is at that instant,
including locks that the parent's other threads hold. A process with service threads (a Prefect flow
run's API client and log shippers, a notebook kernel) can hand a worker a lock that nobody will ever
release, and the worker hangs or dies. Such processes get ``forkserver`` workers, started from a clean
single-threaded server process; plain command-line runs keep ``fork``, which starts faster. tqdm's monitor
thread only sleeps and sets a flag, so it does not count.
"""

from __future__ import annotations

import multiprocessing
import threading

from tqdm._monitor import TMonitor


def other_threads() -> list[threading.Thread]:
    """Live threads besides the main one that could hold a lock when a worker forks."""
    return [t for t in threading.enumerate()
            if t is not threading.main_thread() and not isinstance(t, TMonitor)]


def worker_start_method(num_workers: int) -> str | None:
    """The multiprocessing context for a DataLoader with ``num_workers`` workers: None (torch's default)
    without workers or when this process runs no other threads; ``forkserver`` otherwise (or ``spawn``
    where forkserver does not exist)."""
    if num_workers <= 0 or not other_threads():
        return None
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"
