"""validate and segment on a real Dask cluster give exactly what the process pool gives.

One tiny world (three good clips, a truncated file and a silent one) goes through acquire once; then
validate + segment run with the process pool and on a real LocalCluster of 2 worker processes, and every
output must match: valid.csv, quarantine.csv (reasons included), index.csv and every clip file's bytes.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import distributed
import pandas as pd
import pytest
from media_factory import truncate_copy, write_clip

from avssl_core import parallel
from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.stages.acquire import run_acquire
from avssl_core.stages.segment import run_segment
from avssl_core.stages.validate import run_validate

pytestmark = pytest.mark.timeout(600)


def _config(base: Path, run: str, *overrides: str):
    """Shared source and manifest under ``base``; validate/segment outputs under ``base/run``."""
    return load_config(None, [
        f"paths.raw_dir={base / 'raw'}", f"paths.acquired_dir={base / 'acquired'}",
        f"paths.data_root={base / run}", f"paths.validated_dir={base / run / 'validated'}",
        f"paths.clips_dir={base / run / 'clips'}", f"paths.metrics_dir={base / run / 'metrics'}",
        "acquire.source=local", f"acquire.local.path={base / 'src'}", "acquire.local.label_from_parent=false",
        "segment.clip_seconds=1.0", "segment.short_side=64", "validate.min_valid_fraction=0.1",
        "validate.workers=2", "segment.workers=2", *overrides])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("dask_world")
    src = base / "src"
    src.mkdir()
    for seed in (1, 2, 3):
        write_clip(src / f"good_{seed}.mp4", seed=seed, seconds=2.0)
    truncate_copy(write_clip(base / "whole.mp4", seed=4, faststart=True), src / "truncated.mp4", 0.6)
    write_clip(src / "silent.mp4", seed=5, silent=True)
    run_acquire(_config(base, "acquire"))
    return base


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster of 2 worker processes, closed whatever the tests do."""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        yield cluster
    finally:
        cluster.close()


def _outputs(cfg) -> dict:
    """Everything validate and segment wrote that must not depend on the executor, paths made relative."""
    validated, clips = Path(cfg.paths.validated_dir), Path(cfg.paths.clips_dir)
    index = pd.read_csv(clips / "index.csv", dtype=str, keep_default_na=False)
    for col in ("video_path", "audio_path"):
        index[col] = [str(Path(p).relative_to(clips)) for p in index[col]]
    files = {str(p.relative_to(clips)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(clips.rglob("*")) if p.is_file() and p.name != "index.csv"}
    return {"valid": (validated / "valid.csv").read_bytes(),
            "quarantine": (validated / "quarantine.csv").read_bytes(),
            "index": index.to_dict(orient="records"), "files": files}


def test_dask_cluster_gives_the_process_pools_outputs(world, cluster):
    pool = _config(world, "pool")
    dask = _config(world, "dask", "parallel.executor=dask", f"parallel.dask_scheduler={cluster.scheduler_address}")
    for cfg in (pool, dask):
        run_validate(cfg)
        summary = run_segment(cfg)
        assert summary["num_videos_segmented"] == 3 and summary["num_videos_failed"] == 0

    # The dask run's per-video work ran on the cluster (the scheduler lives in this process).
    assert {"decode_one", "segment_one"} <= set(cluster.scheduler.task_prefixes)  # Dask drops the "_"
    quarantine = pd.read_csv(Path(dask.paths.validated_dir) / "quarantine.csv", dtype=str, keep_default_na=False)
    assert sorted(Path(p).name for p in quarantine["path"]) == ["silent.mp4", "truncated.mp4"]
    assert (quarantine["reasons"] != "").all()
    expected, got = _outputs(pool), _outputs(dask)
    assert len(expected["index"]) == 6 and len(expected["files"]) > 6  # 2 clips x 3 videos (+ markers)
    assert got == expected


def test_segment_on_a_local_cluster_resumes_a_partial_run(world, monkeypatch):
    """With no scheduler address the stage starts (and closes) its own LocalCluster of segment.workers
    processes; videos an earlier run finished are skipped, untouched, and the missing one is redone."""
    cfg = _config(world, "resume", "parallel.executor=dask")
    run_validate(cfg)
    first = run_segment(_config(world, "resume"))  # the process pool does the first run
    clips = Path(cfg.paths.clips_dir)
    before = {p: p.stat().st_mtime_ns for p in clips.rglob("*.mp4")}
    gone = sorted(p for p in clips.iterdir() if p.is_dir())[0]
    shutil.rmtree(gone)  # as if the first run had been stopped before this video

    clusters = []
    real_local_cluster = distributed.LocalCluster
    monkeypatch.setattr(distributed, "LocalCluster", lambda **kw: clusters.append(kw) or real_local_cluster(**kw))
    again = run_segment(cfg)
    assert [kw["n_workers"] for kw in clusters] == [2]  # segment.workers processes, started by the stage
    assert (again["num_videos_skipped"], again["num_videos_segmented"], again["num_videos_failed"]) == (2, 1, 0)
    assert again["num_clips"] == first["num_clips"]
    for path, mtime in before.items():
        assert path.is_file()
        if gone not in path.parents:
            assert path.stat().st_mtime_ns == mtime  # a skipped video's clips are not rewritten


def test_an_unreachable_scheduler_is_a_config_error_naming_the_setting(monkeypatch):
    monkeypatch.setattr(parallel, "DASK_CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ConfigError, match=r"parallel\.dask_scheduler 'tcp://127\.0\.0\.1:9'.*cannot connect"):
        list(parallel.imap_unordered(str, [1, 2], executor="dask", dask_scheduler="tcp://127.0.0.1:9"))
