"""benchmarks/data_path.py runs end to end on a tiny budget (so it cannot rot): every method's tiny preset,
on real clips, writing the JSON and the table it documents."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)


def test_data_path_benchmark_runs_on_a_tiny_budget(tiny_clips, tmp_path, repo_root):
    out = tmp_path / "data_path.json"
    done = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "data_path.py"), "--clips", f"64={tiny_clips}",
         "--presets", "tiny", "paper", "--methods", "avts", "avc", "coattention", "cmac", "--samples", "3",
         "--compare-unsplit", "--device", "cpu", "--json", str(out)],
        capture_output=True, text=True, timeout=170, cwd=repo_root)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {(r["method"], r["preset"]): r for r in result["rows"]}
    assert len(rows) == 8
    for method in ("avts", "avc", "coattention", "cmac"):
        tiny = rows[(method, "tiny")]
        assert tiny["cpu_failed"] == 0 and tiny["cpu_samples_per_s_per_core"] > 0 and tiny["cpu_samples_per_wall_s"] > 0
        assert tiny["device"] == "cpu" and tiny["device_batch"] == 2 and tiny["device_s_per_batch"] > 0
        # the device half of the data path is timed apart from the model, and the unsplit path beside it
        assert tiny["device_transform_s_per_batch"] > 0 and tiny["unsplit_cpu_samples_per_s_per_core"] > 0
        assert tiny["gflop_per_pair"] > 0
        expected = 0.3 * 989e12 / (tiny["gflop_per_pair"] * 1e9) / tiny["cpu_samples_per_s_per_core"]
        assert tiny["cores_per_h100"] == pytest.approx(expected, rel=0.02)
        # 64 px clips are too small for every paper preset (128 or 256 px): skipped, not upsampled
        assert "no clips with a short side >= " in rows[(method, "paper")]["skipped"]
    assert "| avc | tiny | 64 px (mp4) |" in done.stdout


def test_data_path_benchmark_reads_the_frame_store_as_training_does(tiny_clips, tmp_path, repo_root):
    out = tmp_path / "data_path.json"
    done = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "data_path.py"), "--clips", f"64={tiny_clips}",
         "--presets", "tiny", "--methods", "avc", "--samples", "3", "--frames", "store", "--device", "cpu",
         "--json", str(out)],
        capture_output=True, text=True, timeout=170, cwd=repo_root)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(out.read_text())["rows"][0]
    assert row["frames"] == "store" and row["cpu_failed"] == 0 and row["cpu_samples_per_s_per_core"] > 0
    assert "| avc | tiny | 64 px (store) |" in done.stdout
    # No store beside the clips: a clear refusal naming the index, not a silent fallback to decoding.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "index.csv").write_text(tiny_clips.read_text())
    refused = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "data_path.py"), "--clips", f"64={bare / 'index.csv'}",
         "--presets", "tiny", "--methods", "avc", "--samples", "1", "--frames", "store", "--device", "cpu"],
        capture_output=True, text=True, timeout=170, cwd=repo_root)
    assert refused.returncode != 0 and "has no frame store" in refused.stderr
