"""benchmarks/learning_curve.py runs end to end on a tiny budget (so it cannot rot), and its two measures agree
where they must: with the training split as the held-out split, the held-out pairs and the training-split
pairs are the same pairs, so their accuracies and AUCs are equal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(400)

SMALL_AVTS = ("pretrain.hparams={avts: {video_frames: 4, crop_size: 32, short_side: 40, video_channels: [8, 8, 16, "
              "16], audio_channels: [8, 8, 16, 16, 16], audio_fc6_dim: 32, embed_dim: 32}}")


def test_learning_curve_reports_budget_heldout_and_training_pairs(repo_root, tiny_clips, tmp_path):
    out = tmp_path / "curve.jsonl"
    done = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "learning_curve.py"), "--method", "avts",
         "--params", str(repo_root / "params.yaml"), "--values", "1", "--label", "t", "--threads", "1",
         "--out-dir", str(tmp_path / "runs"), "--json", str(out),
         "--set", f"paths.clips_dir={tiny_clips.parent}", "--set", "pretrain.val_split=train",
         "--set", "pretrain.pairs_per_clip=1", "--set", "pretrain.val_pairs=16", "--set", SMALL_AVTS],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["label"], row["method"], row["vary"], row["value"]) == ("t", "avts", "pretrain.train.epochs", "1")
    # 16 clips, one pair each, in AVTS tiny's batches of 16: one step, one epoch.
    assert row["steps"] == 1 and row["epochs"] == 1 and row["cpu_s"] > 0 and row["wall_s"] > 0
    assert len(row["val_acc_per_epoch"]) == 1 and row["loss_first"] == row["loss_last"] > 0
    assert set(row["heldout"]) == {"easy", "easy75_hard25"} and row["chance"] == 0.5
    assert all(0.0 <= a <= 1.0 for a in row["heldout"].values())
    assert row["train_pairs"] == row["heldout"]  # the same split: the same pairs
    assert 0.0 <= row["heldout_auc"] <= 1.0 and row["train_pairs_auc"] == row["heldout_auc"]
    assert 0.0 <= row["heldout_auc_hard"] <= 1.0  # same-video negatives: other pairs, another AUC
    assert (tmp_path / "runs" / "t-avts-epochs=1" / "avts" / "model.pt").is_file()
    assert done.stdout.splitlines()[-1].startswith("| t | avts | pretrain.train.epochs | 1 | 1 |")
