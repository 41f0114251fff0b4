"""benchmarks/gpu_check.sh's CPU dry run, as CI runs it on a machine without a GPU: it says so, runs every
part (throughput, torchrun, decoding, exact resume) through the GPU check's code and writes the JSON."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

# The dry run takes about 25 s on an idle 2-core machine; its own bound (below) leaves room for a machine
# shared with other jobs, and the rest covers making the session's tiny clips.
pytestmark = [pytest.mark.timeout(420),
              pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU machine runs the real check")]


def test_gpu_check_dry_run_without_a_gpu(tiny_clips, tmp_path, repo_root):
    out = tmp_path / "gpu_check.json"
    # One method's throughput keeps it short; the other parts train AVC (the script's default: every method).
    done = subprocess.run(
        ["bash", str(repo_root / "benchmarks" / "gpu_check.sh"), "--clips", str(tiny_clips), "--out", str(out),
         "--work", str(tmp_path / "work"), "--methods", "avc"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "no GPU here" in done.stdout and "running the CPU dry run" in done.stdout
    result = json.loads(out.read_text())
    assert result["mode"] == "cpu_dry_run" and result["gpu"] is None and result["ok"] is True
    settings = result["settings"]
    assert (settings["preset"], settings["precision"], settings["backend"]) == ("tiny", "fp32", "gloo")
    row = result["throughput"]["avc"]
    assert row["ok"] and row["device"] == "cpu" and row["steps"] == settings["steps"] and row["pairs_per_s"] > 0
    assert 0 <= row["data_wait_fraction"] <= 1 and row["model_gflops_per_pair"] > 0
    run = result["torchrun"]
    assert run["ok"] and run["world_size"] == 1 and run["steps"] == settings["steps"]
    decoding = result["decoding"]
    assert decoding["used"] == "cpu" and decoding["max_abs_diff_vs_cpu"] == 0
    assert len(decoding["fallback_warnings"]) == 1 and "no CUDA device" in decoding["fallback_warnings"][0]
    resume = result["exact_resume"]
    assert resume["bit_exact"] and resume["resumed_from"].endswith("step_000001.pt")
