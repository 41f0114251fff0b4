"""Several `avssl ablate` workers on one shared study, as users start them on several machines (the
PostgreSQL and journal-file tests share this)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_ablate_workers(overrides: list[str], storage: str, cwd: Path, *, workers: int = 2,
                       timeout_s: float) -> list[subprocess.Popen]:
    """Start ``workers`` real `avssl ablate --study avts_curriculum` processes at once on ``storage``, wait
    for all, and fail with a worker's stderr if any failed; returns the finished processes (their pids are
    what the trials record as their worker)."""
    sets = [a for o in overrides for a in ("--set", o)]
    command = [sys.executable, "-m", "avssl_core.cli", *sets, "ablate", "--study", "avts_curriculum",
               "--storage", storage]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = [subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for _ in range(workers)]
    errors = [w.communicate(timeout=timeout_s)[1] for w in started]
    for worker, err in zip(started, errors, strict=True):
        assert worker.returncode == 0, err[-3000:]
    return started
