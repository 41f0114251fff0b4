"""benchmarks/sample_cost.py runs end to end on a tiny budget (so it cannot rot), and its parts say what the
frame store changes: with the store no decoder is opened and no frame decoded; without it, every sample's
frames come from the mp4s."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(400)

PARTS = ("video_store", "video_open", "video_decode", "audio_read", "audio_resample", "preprocess")


def _run(repo_root, tiny_clips, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "sample_cost.py"), "--methods", "avc", "--samples", "6",
         "--set", f"paths.clips_dir={tiny_clips.parent}", "--set", "pretrain.val_split=train", *extra],
        capture_output=True, text=True, timeout=180, cwd=repo_root)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert row["method"] == "avc" and row["samples"] == 6 and row["ms_per_sample"] > 0
    assert sum(row[f"{p}_share"] for p in PARTS) == pytest.approx(1.0, abs=0.01)
    return row


def test_sample_cost_splits_a_samples_cpu_time_with_and_without_the_frame_store(repo_root, tiny_clips):
    stored = _run(repo_root, tiny_clips)
    assert stored["decoder_opens"] == 0 and stored["video_open_ms"] == 0 and stored["video_decode_ms"] == 0
    assert stored["video_store_ms"] > 0 and stored["preprocess_ms"] > 0
    decoded = _run(repo_root, tiny_clips, "--set", "segment.frame_store=false")
    assert decoded["decoder_opens"] > 0 and decoded["video_open_ms"] > 0 and decoded["video_decode_ms"] > 0
