"""The pretrain stage end to end on real clips: both methods train, save, evaluate, resume, and a changed
parameter starts a new run instead of resuming a different one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avssl_core.cli import main
from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.stages.pretrain import run_pretrain


def _cfg(tiny_clips: Path, tmp_path: Path, *extra: str):
    return load_config(None, [
        f"paths.clips_dir={tiny_clips.parent}",
        f"paths.metrics_dir={tmp_path / 'metrics'}",
        f"pretrain.out_dir={tmp_path / 'pretrain'}",
        # the fixture's 8 videos are all in the train split: hold out pairs from it (fixed, seeded)
        "pretrain.val_split=train", "pretrain.val_pairs=16", "pretrain.pairs_per_clip=1",
        "pretrain.train.batch_size=4", "pretrain.train.max_steps=2", "pretrain.train.epochs=1",
        "pretrain.train.progress=false", "pretrain.train.checkpoint_every_steps=1",
        *extra,
    ])


@pytest.mark.parametrize("method", ["avts", "avc"])
def test_pretrain_trains_saves_and_evaluates(tiny_clips, tmp_path, method):
    torch.set_num_threads(1)
    metrics = run_pretrain(_cfg(tiny_clips, tmp_path), method, "tiny")
    assert metrics["method"] == method and metrics["steps"] == 2
    assert metrics["protocol"]["pairs"] == 16 and metrics["protocol"]["chance"] == 0.5
    for accuracy in metrics["pretext_accuracy"].values():
        assert 0.0 <= accuracy <= 1.0
    expected = {"avts": {"easy", "easy75_hard25"}, "avc": {"easy"}}[method]
    assert set(metrics["pretext_accuracy"]) == expected
    saved = torch.load(metrics["model"], weights_only=True)
    assert saved["signature"]["method"] == method and saved["signature"]["preset"] == "tiny"
    on_disk = json.loads((tmp_path / "metrics" / f"pretrain_{method}.json").read_text())
    assert on_disk["pretext_accuracy"] == metrics["pretext_accuracy"]
    method_dir = tmp_path / "pretrain" / method
    assert (method_dir / "plots" / "loss.csv").read_text().startswith("step,loss")
    assert len(list((method_dir / "runs").iterdir())) == 1


def test_rerun_resumes_and_changed_params_start_a_new_run(tiny_clips, tmp_path):
    torch.set_num_threads(1)
    first = run_pretrain(_cfg(tiny_clips, tmp_path), "avc", "tiny")
    summary = json.loads((Path(first["run_dir"]) / "train_summary.json").read_text())
    again = run_pretrain(_cfg(tiny_clips, tmp_path), "avc", "tiny")
    resumed = json.loads((Path(again["run_dir"]) / "train_summary.json").read_text())
    assert again["run_dir"] == first["run_dir"]
    assert resumed["resumed_from"] and resumed["global_step"] == summary["global_step"] == 2

    changed = run_pretrain(_cfg(tiny_clips, tmp_path, "pretrain.hparams={avc: {lr: 0.0005}}"), "avc", "tiny")
    assert changed["run_dir"] != first["run_dir"]
    assert not Path(first["run_dir"]).exists()  # the superseded run is pruned


def test_unknown_method_and_hparam_are_config_errors(tiny_clips, tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        run_pretrain(_cfg(tiny_clips, tmp_path), "nope", "tiny")
    with pytest.raises(ConfigError, match=r"pretrain\.hparams\.avc"):
        run_pretrain(_cfg(tiny_clips, tmp_path, "pretrain.hparams={avc: {not_a_knob: 1}}"), "avc", "tiny")
    assert main(["--set", "pretrain.preset=huge", "pretrain", "--method", "avc"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
