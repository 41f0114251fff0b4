"""Run a per-file function over many files in worker processes, with a progress bar.

Stages are embarrassingly parallel over files (synthesis, probing, decoding checks, segmentation).
Results come back in completion order; callers sort if they need a stable order.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from tqdm import tqdm


def imap_unordered(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int = 1,
    desc: str = "",
    unit: str = "file",
    total: int | None = None,
) -> Iterator[Any]:
    """Yield ``fn(item)`` for each item. ``workers <= 1`` runs inline (easier to debug and profile).

    Workers use the 'spawn' start method: FFmpeg and torch keep threads, and forking a process with
    live threads can deadlock. At most ``2 * workers`` tasks are in flight so memory stays bounded.
    """
    items = list(items) if total is None else items
    total = len(items) if total is None else total
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
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
