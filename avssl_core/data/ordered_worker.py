"""One background thread that runs submitted calls in order, with a bounded backlog.

Segmentation decodes and scales in the calling thread while x264 encodes in this one: PyAV releases
the GIL inside the codec, so the two overlap (the way the ffmpeg command line pipelines its stages)
without giving x264 more threads than configured. Callbacks run in the *calling* thread, in
submission order, so the caller's bookkeeping needs no locks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class OrderedWorker:
    def __init__(self, max_backlog: int = 16, name: str = "ordered-worker") -> None:
        self.max_backlog = max_backlog
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[tuple[Future, Callable[[], None] | None]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any, then: Callable[[], None] | None = None) -> None:
        """Queue ``fn(*args)``; ``then()`` runs here once it has finished. Errors surface on a later call."""
        self._pending.append((self._pool.submit(fn, *args), then))
        # Bounded backlog: wait for the oldest call rather than queue frames without limit.
        self._collect(wait_for=max(0, len(self._pending) - self.max_backlog))

    def poll(self) -> None:
        """Run the callbacks of finished calls; re-raise the first error."""
        self._collect(wait_for=0)

    def drain(self) -> None:
        """Wait for every queued call."""
        self._collect(wait_for=len(self._pending))

    def close(self) -> None:
        """Stop: let the running call end, drop the queued ones (used on errors; drain first otherwise)."""
        for future, _ in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self, wait_for: int) -> None:
        while self._pending and (wait_for > 0 or self._pending[0][0].done()):
            future, then = self._pending.popleft()
            future.result()
            wait_for -= 1
            if then is not None:
                then()
