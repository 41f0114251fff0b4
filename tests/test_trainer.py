"""The shared trainer: exact resume after SIGKILL, DDP over torchrun, refusal of foreign checkpoints,
decode-failure accounting, gradient accumulation, schedules. Toy method and data: tests/trainer_toy.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from trainer_toy import OtherToy, run_toy

from avssl_core.errors import DataError
from avssl_core.methods.base import OptimSpec
from avssl_core.train import (
    CheckpointMismatchError,
    LearningRateSchedule,
    failed_entries,
    find_latest_checkpoint,
    load_checkpoint,
)

TOY_SCRIPT = Path(__file__).with_name("trainer_toy.py")
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}


def _assert_identical(a, b, where: str = "") -> None:
    """Recursive equality: tensors with torch.equal, containers element by element."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _records(out_dir: Path, kind: str) -> list[dict]:
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_resume_after_sigkill_mid_epoch_is_bit_exact(tmp_path):
    # 40 samples, batch 4, 2 batches per optimizer step: 5 steps per epoch, 15 in all; one DataLoader
    # worker, dropout, SGD with momentum, warmup then plateau schedule.
    common = ["--epochs", "3", "--grad-accum", "2", "--num-workers", "1"]
    # The uninterrupted run in a fresh process too: the checkpoints hold Python's global RNG state, and a
    # thread an earlier test left in this process (Prefect's service loops draw their jitter from it) can
    # move it.
    subprocess.run([sys.executable, str(TOY_SCRIPT), "--out", str(tmp_path / "straight"), *common], env=_env(),
                   check=True, timeout=120, capture_output=True)
    straight_summary = json.loads((tmp_path / "straight" / "train_summary.json").read_text())
    assert straight_summary["global_step"] == 15 and straight_summary["resumed_from"] is None

    out = tmp_path / "killed"
    slow = subprocess.Popen([sys.executable, str(TOY_SCRIPT), "--out", str(out), "--delay", "0.05", *common],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = out / "checkpoints" / "step_000002.pt"  # epoch 0, batch 4 of 10
    deadline = time.monotonic() + 60
    while not first.exists():
        assert slow.poll() is None, slow.stdout.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.01)
    os.kill(slow.pid, signal.SIGKILL)
    slow.wait()
    assert not (out / "train_summary.json").exists()
    killed_at = load_checkpoint(find_latest_checkpoint(out))["position"]
    assert killed_at["epoch"] == 0 and 0 < killed_at["batches_consumed"] < 10, killed_at  # mid-epoch

    subprocess.run([sys.executable, str(TOY_SCRIPT), "--out", str(out), *common], env=_env(), check=True,
                   timeout=120, capture_output=True)
    resumed_summary = json.loads((out / "train_summary.json").read_text())
    assert resumed_summary["resumed_from"].endswith(f"step_{killed_at['global_step']:06d}.pt")

    straight = load_checkpoint(find_latest_checkpoint(tmp_path / "straight"))
    resumed = load_checkpoint(find_latest_checkpoint(out))
    assert straight["position"] == resumed["position"] == {"epoch": 3, "batches_consumed": 0, "global_step": 15}
    _assert_identical(straight["model"], resumed["model"], "model")
    _assert_identical(straight["optimizer"], resumed["optimizer"], "optimizer")
    _assert_identical(straight["scheduler"], resumed["scheduler"], "scheduler")  # plateau's best epoch loss
    _assert_identical(straight["ranks"][0]["rng"], resumed["ranks"][0]["rng"], "rng")

    # The resumed run's logs read as one run: every step once, with the uninterrupted run's losses.
    straight_steps = [(r["step"], r["loss"]) for r in _records(tmp_path / "straight", "step")]
    assert [(r["step"], r["loss"]) for r in _records(out, "step")] == straight_steps
    assert [s for s, _ in straight_steps] == list(range(1, 16))
    assert ([r["train_loss"] for r in _records(out, "epoch")]
            == [r["train_loss"] for r in _records(tmp_path / "straight", "epoch")])
    loss_csv = (out / "plots" / "loss.csv").read_text().splitlines()
    assert loss_csv[0] == "step,loss" and len(loss_csv) == 16


def test_torchrun_two_processes_share_the_epoch_and_agree(tmp_path):
    out, report = tmp_path / "ddp", tmp_path / "report"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(TOY_SCRIPT),
           "--out", str(out), "--report", str(report), "--epochs", "2", "--dataset-size", "17", "--grad-accum", "2"]
    # Own session, so that a hang (a collective one rank never joins) can be ended with all workers.
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun hung:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]

    seen = [json.loads((report / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    # 17 samples: 9 positions per rank, one of them padding, so batches of 4, 4, 1 on one rank and
    # 4, 4, 0 on the other: the empty batch is the last of an accumulation group (2, then 1), where the
    # gradients must still be averaged over both ranks.
    for epoch in (0, 1):
        per_rank = [[i for e, i in s if e == epoch] for s in seen]
        assert sorted(map(len, per_rank)) == [8, 9]
        assert sorted(per_rank[0] + per_rank[1]) == list(range(17))  # each sample once, none twice

    w0, w1 = (torch.load(report / f"weights_rank{r}.pt", weights_only=True) for r in (0, 1))
    _assert_identical(w0, w1, "weights")
    ckpt = load_checkpoint(find_latest_checkpoint(out))
    _assert_identical(ckpt["model"], w0, "checkpointed weights")
    assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2
    assert not torch.equal(ckpt["ranks"][0]["rng"]["torch"], ckpt["ranks"][1]["rng"]["torch"])  # own dropout
    summary = json.loads((report / "summary_rank0.json").read_text())
    assert summary["world_size"] == 2 and summary["samples_seen"] == 34 and summary["global_step"] == 4
    assert len(_records(out, "step")) == 4  # only rank 0 logs


def test_refuses_checkpoint_of_another_method_preset_or_hparams(tmp_path):
    run_toy(tmp_path, epochs=1, max_steps=1)
    ckpt_name = "step_000001.pt"
    with pytest.raises(CheckpointMismatchError, match=rf"{ckpt_name}.*another method.*'toy_av'.*'other_toy'"):
        run_toy(tmp_path, method_cls=OtherToy, epochs=1)
    with pytest.raises(CheckpointMismatchError, match=r"another preset: method 'toy_av', preset 'tiny'.*preset 'wide'"):
        run_toy(tmp_path, preset="wide", epochs=1)
    with pytest.raises(CheckpointMismatchError, match="other hyper-parameters"):
        run_toy(tmp_path, overrides={"lr": 0.1}, epochs=1)
    # The refused runs changed nothing: the same method resumes and finishes the epoch.
    _, summary = run_toy(tmp_path, epochs=1)
    assert summary["resumed_from"].endswith(ckpt_name) and summary["global_step"] == 10


def test_decode_failures_are_counted_and_named(tmp_path):
    method, summary = run_toy(tmp_path / "few", epochs=1, broken=(3, 17), max_failed_fraction=0.1,
                              val_size=8, channels_last_3d=True)
    assert method.video[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert summary["failed_count"] == 2 and summary["samples_seen"] == 40
    assert sorted(summary["failed_files"]) == ["clip_003.mp4 (toy decode error)", "clip_017.mp4 (toy decode error)"]
    # Both forms of a batch's "_failed" entry: plain file names, or the pair pipeline's dict.
    assert failed_entries(["a.mp4"]) == ["a.mp4"]
    assert failed_entries({"failed": ["b.mp4"], "reasons": ["no audio"]}) == ["b.mp4 (no audio)"]
    (epoch,) = _records(tmp_path / "few", "epoch")
    assert 0.0 <= epoch["val_accuracy"] <= 1.0 and set(epoch["val_accuracy_by_kind"]) == {"positive", "easy"}


def test_too_many_decode_failures_stop_the_run(tmp_path):
    broken = tuple(range(0, 40, 4))  # a quarter of the samples
    with pytest.raises(DataError, match=r"could not be decoded.*max_failed_fraction=0.1.*clip_0\d\d\.mp4") as err:
        run_toy(tmp_path, epochs=1, broken=broken, max_failed_fraction=0.1)
    seen = int(str(err.value).split(" of ")[1].split()[0])
    assert 20 <= seen < 40  # not before the minimum sample count, and well before the epoch's end


def test_gradient_accumulation_matches_the_larger_batch(tmp_path):
    # No dropout and no batch-dependent layers: 2 x 4 accumulated must equal one batch of 8.
    no_dropout = {"dropout": 0.0}
    big, _ = run_toy(tmp_path / "b8", epochs=1, max_steps=2, batch_size=8, overrides=no_dropout)
    accumulated, _ = run_toy(tmp_path / "b4x2", epochs=1, max_steps=2, batch_size=4, grad_accum_steps=2,
                             overrides=no_dropout)
    small, _ = run_toy(tmp_path / "b4", epochs=1, max_steps=2, batch_size=4, overrides=no_dropout)
    for name, weight in big.state_dict().items():
        torch.testing.assert_close(accumulated.state_dict()[name], weight, rtol=1e-5, atol=1e-6)
    assert not all(torch.allclose(small.state_dict()[n], w, atol=1e-6) for n, w in big.state_dict().items())


def test_learning_rate_schedules():
    def lrs(spec: OptimSpec, steps: int, epoch_losses=()) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=spec.lr)
        schedule = LearningRateSchedule(opt, spec, total_steps=steps)
        seen = []
        for _ in range(steps):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.after_optimizer_step()
        for loss in epoch_losses:
            schedule.after_epoch(loss)
            seen.append(opt.param_groups[0]["lr"])
        return seen

    warm_cosine = lrs(OptimSpec("sgd", lr=1.0, schedule="cosine", warmup_steps=2), 6)
    assert warm_cosine[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert warm_cosine[2] > warm_cosine[3] > warm_cosine[4] > warm_cosine[5] > 0
    plateau = lrs(OptimSpec("sgd", lr=1.0, schedule="plateau", plateau_patience=1, warmup_steps=2), 3,
                  epoch_losses=[1.0, 0.5, 0.6, 0.6, 0.6])
    assert plateau == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1])


def test_plateau_tracking_restarts_where_the_objective_changes():
    # AVTS-like: patience 1, the easy stage's loss stalls once (x0.1 after epoch 3), then the hard stage
    # (from epoch 5) has a higher loss that falls, then stalls. Without the restart every hard epoch is
    # "worse than the easy best" and the rate keeps falling; with it the hard stage trains at the rate the
    # easy stage ended with until its own loss stalls.
    losses = [1.0, 0.6, 0.6, 0.6, 0.5, 0.9, 0.8, 0.7, 0.7, 0.7, 0.7]
    hard_from = 5

    def rates(restart: tuple[int, ...]) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        schedule = LearningRateSchedule(opt, OptimSpec("sgd", lr=1.0, schedule="plateau", plateau_patience=1,
                                                       plateau_restart_epochs=restart), total_steps=1)
        seen = []  # the rate each epoch trains at
        for epoch, loss in enumerate(losses):
            seen.append(opt.param_groups[0]["lr"])
            schedule.after_epoch(loss)
            schedule.before_epoch(epoch + 1)
        return seen

    restarted = rates((hard_from,))
    assert restarted == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.01])
    assert restarted[hard_from] == restarted[hard_from - 1]  # the hard stage starts at the easy stage's end rate
    never = rates(())
    assert never[:hard_from + 1] == restarted[:hard_from + 1]
    assert never[hard_from:] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_a_short_run_crossing_the_switch_trains_the_new_stage_at_the_rate_the_old_one_ended_with(tmp_path):
    # The toy's labels invert from epoch 3 (a new, harder objective: the loss jumps), the plateau
    # tracking restarts there (patience 0: x0.1 after any epoch that does not improve).
    def epoch_rates(restart: list[int]) -> tuple[list[float], list[float]]:
        out = tmp_path / f"restart{restart}"
        run_toy(out, epochs=5, flip_labels_from=3, overrides={"plateau_restart_epochs": restart, "warmup_steps": 0})
        # An epoch record's rate is the one after that epoch's plateau step: the next epoch's rate.
        records = _records(out, "epoch")
        return [0.05] + [r["lr"] for r in records[:-1]], [r["train_loss"] for r in records]

    restarted, losses = epoch_rates([3])
    assert losses[3] > max(losses[:3])  # the switch raised the loss
    assert restarted[3] == restarted[2]  # trained at the intended rate: where the first stage left it
    assert restarted[4] == restarted[3]  # the new stage's first epoch is its own best, no decay
    never, same_losses = epoch_rates([])
    assert same_losses[:4] == losses[:4] and never[:4] == restarted[:4]
    assert never[4] == pytest.approx(0.1 * restarted[4])  # without the restart the hard epoch counts as a stall


def test_workers_start_from_a_forkserver_while_other_threads_run_and_train_identically(tmp_path):
    # A live service thread (as a Prefect flow run has) makes forking workers unsafe: the trainer then
    # starts them from a forkserver, and the run ends with the weights a forked-worker run ends with.
    import threading

    from avssl_core.train.workers import worker_start_method

    assert worker_start_method(0) is None
    forked, _ = run_toy(tmp_path / "fork", epochs=2, num_workers=1)
    stop = threading.Event()
    service = threading.Thread(target=stop.wait, name="service", daemon=True)
    service.start()
    try:
        assert worker_start_method(1) == "forkserver" and worker_start_method(0) is None
        served, summary = run_toy(tmp_path / "forkserver", epochs=2, num_workers=1)
    finally:
        stop.set()
        service.join()
    assert summary["global_step"] == 20
    _assert_identical(forked.state_dict(), served.state_dict())


@pytest.mark.timeout(30)
def test_the_trainer_gets_only_a_checked_precision():
    """The trainer does not check ``precision`` again: a TrainConfig built or changed in code is checked by
    its constructor, so an unknown precision never reaches resolve_precision."""
    import dataclasses

    from avssl_core.config import TrainConfig
    from avssl_core.errors import ConfigError
    from avssl_core.train import resolve_precision

    for build in (lambda: TrainConfig(precision="fp8"), lambda: dataclasses.replace(TrainConfig(), precision="fp8")):
        with pytest.raises(ConfigError, match=r"^pretrain\.train\.precision: expected one of .*got 'fp8'$"):
            build()
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))


def test_validating_every_other_epoch_trains_the_same_weights_and_always_validates_the_last(tmp_path):
    every, _ = run_toy(tmp_path / "every", epochs=3, val_size=8)
    fewer, summary = run_toy(tmp_path / "fewer", epochs=3, val_size=8, validate_every_epochs=2)
    _assert_identical(every.state_dict(), fewer.state_dict(), "weights")
    validated = {r["epoch"]: r["val_accuracy"] for r in _records(tmp_path / "every", "epoch")}
    kept = {r["epoch"]: r.get("val_accuracy") for r in _records(tmp_path / "fewer", "epoch")}
    assert sorted(validated) == [0, 1, 2] and all(v is not None for v in validated.values())
    # After epoch 1 (every second) and epoch 2 (the last); the same figures where both validated.
    assert kept == {0: None, 1: validated[1], 2: validated[2]}
    assert summary["val_accuracy"] == validated[2]
    assert (tmp_path / "fewer" / "plots" / "val_accuracy.csv").read_text().splitlines()[1:] == [
        f"1,{validated[1]}", f"2,{validated[2]}"]
