"""How DataLoader worker processes start.

On Linux torch forks its workers: fast, but a fork copies the parent's memory as it is at that instant,
including locks that the parent's other threads hold. A process with service threads (a Prefect flow
run's API client and log shippers, a notebook kernel) can hand a worker a lock that nobody will ever
release, and the worker hangs or dies. Such processes get ``forkserver`` workers, started from a clean
single-threaded server process; plain command-line runs keep ``fork``, which starts faster. tqdm's monitor
thread only sleeps and sets a flag, and a ``threading.Timer`` (a watchdog such as pytest-timeout's) sleeps
on an event until it fires, holding no lock: neither counts.

How a worker hands its batches back matters as much. With torch's default ``file_descriptor`` sharing
strategy every tensor goes back as a file descriptor that the main process fetches over a socket from a
helper thread in the worker (multiprocessing's resource sharer), with an authentication handshake and no
timeout: if that thread is missing or stuck in the worker (a fork copies the listener without its thread),
the main process waits forever inside the DataLoader. Workers therefore share by shared-memory file name
(``file_system``): the main process opens the segment itself and never waits on the worker; torch's
``torch_shm_manager`` removes segments left by a killed process. Only the worker's strategy changes; the
main process's stays what the user set.
"""

from __future__ import annotations

import multiprocessing
import threading

import torch.multiprocessing
from tqdm._monitor import TMonitor

from avssl_core.train.seeding import seed_dataloader_worker


def other_threads() -> list[threading.Thread]:
    """Live threads besides the main one that could hold a lock when a worker forks."""
    return [t for t in threading.enumerate()
            if t is not threading.main_thread() and not isinstance(t, TMonitor | threading.Timer)]


def worker_start_method(num_workers: int) -> str | None:
    """The multiprocessing context for a DataLoader with ``num_workers`` workers: None (torch's default)
    without workers or when this process runs no other threads; ``forkserver`` otherwise (or ``spawn``
    where forkserver does not exist)."""
    if num_workers <= 0 or not other_threads():
        return None
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def start_dataloader_worker(worker_id: int) -> None:
    """worker_init_fn of the project's DataLoaders: batches go back by shared-memory file name, not by
    file descriptor (see the module docstring), and python and numpy get the worker's seed."""
    torch.multiprocessing.set_sharing_strategy("file_system")
    seed_dataloader_worker(worker_id)
