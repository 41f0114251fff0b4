"""Run a per-file function over many files in worker processes or on a Dask cluster, with a progress bar.

Stages are embarrassingly parallel over files (synthesis, probing, decoding checks, segmentation).
Results come back in completion order; callers sort if they need a stable order.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import sys
import typing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from tqdm import tqdm

from avssl_core.config import Executor
from avssl_core.errors import ConfigError

EXECUTORS = typing.get_args(Executor)
DASK_CONNECT_TIMEOUT_S = 30  # a scheduler that does not answer within this is reported, not waited on


def imap_unordered(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int = 1,
    desc: str = "",
    unit: str = "file",
    total: int | None = None,
    executor: str = "processes",
    dask_scheduler: str | None = None,
) -> Iterator[Any]:
    """Yield ``fn(item)`` for each item. With ``executor='processes'``, ``workers <= 1`` runs inline
    (easier to debug and profile) and more runs a local process pool. With ``executor='dask'`` the calls
    run on a Dask cluster: the one at ``dask_scheduler`` (an address such as tcp://host:8786), or else a
    LocalCluster of ``workers`` processes started and closed here. ``fn`` must be importable by name there.

    Workers use the 'spawn' start method (Dask's default too): FFmpeg and torch keep threads, and forking
    a process with live threads can deadlock. At most 2 tasks per worker are in flight so memory stays
    bounded.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"parallel.executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    items = list(items) if total is None else items
    total = len(items) if total is None else total
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        if executor == "dask":
            if total:  # no cluster to start for nothing
                yield from _dask_unordered(fn, items, workers, dask_scheduler, bar)
            return
        if workers <= 1:
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            it = iter(items)
            pending = set()
            for item in it:
                pending.add(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        bar.update(1)
                        yield fut.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    bar.update(1)
                    yield fut.result()
    finally:
        bar.close()


def _dask_unordered(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, scheduler: str | None,
                    bar: tqdm) -> Iterator[Any]:
    # Imported here: distributed is slow to import and only this executor needs it.
    from distributed import Client, LocalCluster, as_completed

    cluster = client = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
            except OSError as exc:  # refused, unresolvable, or timed out (TimeoutError is an OSError)
                raise ConfigError(f"parallel.dask_scheduler {scheduler!r}: cannot connect to the Dask scheduler "
                                  f"({exc})") from exc
        else:
            # One thread per worker process: the per-video functions hold the GIL between FFmpeg calls.
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=":0")  # any free port: never clash with another cluster
            client = Client(cluster)
        slots = max(1, sum(client.nthreads().values()))
        it = iter(items)
        # pure=False: two equal items are two calls, as in the process pool (Dask would merge them).
        done = as_completed(client.submit(fn, item, pure=False) for item in itertools.islice(it, 2 * slots))
        for fut in done:
            result = fut.result()  # re-raises the task's exception here, as the process pool does
            for item in itertools.islice(it, 1):  # keep the cluster busy while the caller handles this one
                done.add(client.submit(fn, item, pure=False))
            fut.release()
            bar.update(1)
            yield result
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
