"""The pretrain stage end to end on real clips: both methods train, save, evaluate, resume, and a changed
parameter starts a new run instead of resuming a different one."""

from __future__ import annotations

import io
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


def test_rerun_keeps_a_finished_run_and_changed_params_start_a_new_run(tiny_clips, tmp_path):
    """`dvc repro pretrain@<method>` for an unchanged run (e.g. after pretrain.train.device changed, which
    DVC tracks but the run key leaves out) must not touch model.pt or the metrics, so that
    evaluate@<method> stays up to date and the real loss and throughput are not lost."""
    first = run_pretrain(_cfg(tiny_clips, tmp_path), "avc", "tiny")
    metrics_file = tmp_path / "metrics" / "pretrain_avc.json"
    model = Path(first["model"])
    run_dir = Path(first["run_dir"])
    before = {path: path.read_bytes() for path in (metrics_file, model, run_dir / "train_summary.json")}
    assert first["samples_per_s"] > 0 and first["steps"] == 2  # (2 steps end no epoch: no epoch loss)

    again = run_pretrain(_cfg(tiny_clips, tmp_path, "pretrain.train.log_every_steps=5"), "avc", "tiny")
    assert again == first
    assert {path: path.read_bytes() for path in before} == before

    # DVC deletes the metrics file (not a persistent output) before it reruns the stage; a lost model.pt
    # is put back from the final checkpoint: the same weights, and the metrics as first published.
    metrics_file.unlink()
    model.unlink()
    third = run_pretrain(_cfg(tiny_clips, tmp_path), "avc", "tiny")
    assert third == first and metrics_file.read_bytes() == before[metrics_file]
    restored = torch.load(model, weights_only=True)["state_dict"]
    original = torch.load(io.BytesIO(before[model]), weights_only=True)["state_dict"]
    assert restored.keys() == original.keys() and all(torch.equal(restored[k], original[k]) for k in original)
    assert (run_dir / "train_summary.json").read_bytes() == before[run_dir / "train_summary.json"]
    put_back = model.read_bytes()
    assert run_pretrain(_cfg(tiny_clips, tmp_path), "avc", "tiny") == first
    assert model.read_bytes() == put_back and metrics_file.read_bytes() == before[metrics_file]

    changed = run_pretrain(_cfg(tiny_clips, tmp_path, "pretrain.hparams={avc: {lr: 0.0005}}"), "avc", "tiny")
    assert changed["run_dir"] != first["run_dir"]
    assert changed["samples_per_s"] > 0 and changed["steps"] == 2


def test_unknown_method_and_hparam_are_config_errors(tiny_clips, tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        run_pretrain(_cfg(tiny_clips, tmp_path), "nope", "tiny")
    with pytest.raises(ConfigError, match=r"pretrain\.hparams\.avc"):
        run_pretrain(_cfg(tiny_clips, tmp_path, "pretrain.hparams={avc: {not_a_knob: 1}}"), "avc", "tiny")
    assert main(["--set", "pretrain.preset=huge", "pretrain", "--method", "avc"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)  # end to end; see [tool.pytest.ini_options] in pyproject.toml
def test_sigkill_mid_epoch_then_rerun_gives_identical_weights(tiny_clips, tmp_path):
    """`avssl pretrain` killed with SIGKILL mid-epoch and run again ends with the same weights, bit for
    bit, as a run never interrupted: real clips, torchcodec decoding in a DataLoader worker, AVC tiny."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "avssl_core.cli", "--params", os.devnull,
                "--set", f"paths.clips_dir={tiny_clips.parent}", "--set", f"paths.metrics_dir={out / 'metrics'}",
                "--set", f"pretrain.out_dir={out / 'pretrain'}", "--set", "pretrain.val_split=train",
                "--set", "pretrain.val_pairs=8", "--set", "pretrain.pairs_per_clip=2",
                "--set", "pretrain.train.batch_size=4", "--set", "pretrain.train.epochs=2",
                "--set", "pretrain.train.num_workers=1", "--set", "pretrain.train.deterministic=true",
                "--set", "pretrain.train.checkpoint_every_steps=2", "--set", "pretrain.train.progress=false",
                "pretrain", "--method", "avc", "--preset", "tiny"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(whole), check=True, env=env, capture_output=True, timeout=600)

    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # 32 pairs per epoch at batch 4: 8 steps an epoch, so step 4 is mid-epoch.
    while not list((killed / "pretrain").glob("avc/runs/*/checkpoints/step_000004.pt")):
        assert proc.poll() is None and time.time() < deadline, "run ended before its step-4 checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "pretrain/avc/model.pt").exists()
    subprocess.run(command(killed), check=True, env=env, capture_output=True, timeout=600)

    a = torch.load(whole / "pretrain/avc/model.pt", weights_only=True)["state_dict"]
    b = torch.load(killed / "pretrain/avc/model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    resumed = json.loads(next((killed / "pretrain").glob("avc/runs/*/train_summary.json")).read_text())
    assert resumed["resumed_from"] and resumed["global_step"] == 16


def test_same_seed_same_initial_weights(tiny_clips, tmp_path):
    from avssl_core.stages.pretrain import prepare_pretraining

    cfg = _cfg(tiny_clips, tmp_path)
    first = prepare_pretraining(cfg, "avts", "tiny").method.state_dict()
    second = prepare_pretraining(cfg, "avts", "tiny").method.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = prepare_pretraining(_cfg(tiny_clips, tmp_path, "pretrain.train.seed=1"), "avts", "tiny")
    assert not torch.equal(other.method.state_dict()["video_fc.weight"], first["video_fc.weight"])


def test_a_code_change_starts_a_new_run(tiny_clips, tmp_path, monkeypatch):
    from avssl_core.stages import pretrain as stage

    cfg = _cfg(tiny_clips, tmp_path)
    run = stage.prepare_pretraining(cfg, "avc", "tiny")
    before = stage.run_key(cfg, run.method, run.train_config)
    assert stage.run_key(cfg, run.method, run.train_config) == before  # stable: a rerun resumes
    monkeypatch.setattr(stage, "code_fingerprint", lambda: "edited trainer")
    assert stage.run_key(cfg, run.method, run.train_config) != before
