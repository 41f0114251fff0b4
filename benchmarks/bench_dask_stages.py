"""validate + segment on a 2-worker Dask LocalCluster against the 2-worker process pool, in one run.

Builds a synthetic world (default: the quickstart's, 48 videos of 30 s), acquires it once, then runs the
real stage functions (run_validate, run_segment) once per executor into fresh output folders, executors
in the order given. Dask's wall time includes starting and closing the LocalCluster in each stage, as a
user's run pays it. Then the scheduler's overhead per task: ``imap_unordered`` of a no-op (``abs``) over
``--noop-items`` items on an already running 2-worker LocalCluster, and on the process pool, per item.

    .venv/bin/python benchmarks/bench_dask_stages.py                       # quickstart world, minutes
    .venv/bin/python benchmarks/bench_dask_stages.py --videos 8 --duration 10
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from avssl_core.config import load_config
from avssl_core.parallel import imap_unordered
from avssl_core.stages.acquire import run_acquire
from avssl_core.stages.segment import run_segment
from avssl_core.stages.validate import run_validate

WORKERS = 2


def _config(base: Path, run: str, args, *overrides: str):
    return load_config(None, [
        f"paths.data_root={base}", f"paths.raw_dir={base / 'raw'}", f"paths.acquired_dir={base / 'acquired'}",
        f"paths.validated_dir={base / run / 'validated'}", f"paths.clips_dir={base / run / 'clips'}",
        f"paths.metrics_dir={base / run / 'metrics'}", f"synth.num_videos={args.videos}",
        f"synth.duration_s={args.duration}", f"synth.workers={WORKERS}", f"acquire.workers={WORKERS}",
        f"validate.workers={WORKERS}", f"segment.workers={WORKERS}", f"parallel.executor={run}",
        # a small world may leave a split empty; these stages do not read splits, so do not refuse it
        "pretrain.val_split=train", "evaluate.split=train", *overrides])


def time_stages(cfg) -> dict:
    t0 = time.perf_counter()
    validated = run_validate(cfg)
    t1 = time.perf_counter()
    segmented = run_segment(cfg)
    t2 = time.perf_counter()
    return {"validate_s": round(t1 - t0, 2), "segment_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
            "valid": validated["valid"], "clips": segmented["num_clips"]}


def per_item_overhead(items: int) -> dict:
    """Seconds per no-op task: scheduling, serialization and the round trip, nothing else."""
    from distributed import LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0")
    start_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        n = sum(1 for _ in imap_unordered(abs, range(items), executor="dask",
                                          dask_scheduler=cluster.scheduler_address))
        dask_s = time.perf_counter() - t0
    finally:
        cluster.close()
    t0 = time.perf_counter()  # the pool's time includes spawning its 2 workers
    m = sum(1 for _ in imap_unordered(abs, range(items), workers=WORKERS))
    pool_s = time.perf_counter() - t0
    assert n == m == items
    return {"items": items, "local_cluster_start_s": round(start_s, 2),
            "dask_ms_per_item": round(1000 * dask_s / items, 3), "pool_ms_per_item": round(1000 * pool_s / items, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=48)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per video")
    ap.add_argument("--order", default="processes,dask", help="executors, in the order they run")
    ap.add_argument("--noop-items", type=int, default=2000)
    ap.add_argument("--workdir", default=None, help="where the world is written (default: a temp folder)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.WARNING)  # it sets INFO for itself
    os.environ.setdefault("TQDM_DISABLE", "1")

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        run_acquire(_config(base, "processes", args))
        world_s = time.perf_counter() - t0
        runs = {name: time_stages(_config(base, name, args)) for name in args.order.split(",")}
    if len({(r["valid"], r["clips"]) for r in runs.values()}) != 1:
        sys.exit(f"the executors disagree: {runs}")
    report = {
        "world": {"videos": args.videos, "duration_s": args.duration, "synth_and_acquire_s": round(world_s, 1)},
        "workers": WORKERS,
        "runs": runs,
        "dask_over_processes": round(runs["dask"]["total_s"] / runs["processes"]["total_s"], 3),
        "overhead": per_item_overhead(args.noop_items),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
