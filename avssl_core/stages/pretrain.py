"""pretrain: train one method on the clip index, then measure its pretext accuracy on held-out pairs.

Reads  <clips_dir>/index.csv (the segment stage's clips; ``pretrain.train_split`` / ``val_split``).
Writes <pretrain.out_dir>/<method>/  checkpoints/ (resumable), metrics.jsonl, plots/loss.csv,
                                     train_summary.json, model.pt (the trained method's weights)
       <metrics_dir>/pretrain_<method>.json  (a DVC metric: pretext accuracy per protocol, throughput)

Running it again resumes from the latest checkpoint of the same method, preset and hyper-parameters;
a checkpoint of anything else is refused (train/checkpoint.py). A run that already finished is not
touched: model.pt and the metrics file are left (or put back) exactly as the run published them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from avssl_core.config import Config
from avssl_core.data.frame_store import configured_frames_dir
from avssl_core.errors import ConfigError
from avssl_core.io_utils import atomic_path, write_json_atomic
from avssl_core.methods.base import PretrainMethod
from avssl_core.methods.protocols import PROTOCOLS, held_out_pairs, measure_pretext, per_process_batch_size
from avssl_core.methods.registry import build_pretrain_method
from avssl_core.methods.saved import model_sha256, save_model
from avssl_core.pipeline_spec import code_fingerprint  # the run key's code: dvc.yaml's pretrain deps
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.dataset import PairDataset, collate_skipping_failures
from avssl_core.pretext.resolution import check_clip_resolution
from avssl_core.pretext.sampling import PairSampler
from avssl_core.train.checkpoint import find_latest_checkpoint, load_checkpoint
from avssl_core.train.trainer import train

log = logging.getLogger(__name__)

def trainer_config(cfg: Config, method: PretrainMethod, train_pairs: int):
    """The trainer settings: params.yaml's, with epochs and batch size from the preset when unset."""
    tc = cfg.pretrain.train
    hp = method.hparams
    batch_size = per_process_batch_size(cfg, method)
    epochs = tc.epochs
    max_steps = tc.max_steps
    if epochs is None:
        if "epochs" in hp:
            epochs = int(hp["epochs"])
        else:
            # Step-based presets (AVC): enough epochs to hold the preset's optimizer steps.
            steps_per_epoch = max(1, train_pairs // (batch_size * tc.grad_accum_steps))
            epochs = max(1, math.ceil(int(hp["train_steps"]) / steps_per_epoch))
            max_steps = max_steps if max_steps is not None else int(hp["train_steps"])
    return dataclasses.replace(tc, epochs=epochs, batch_size=batch_size, max_steps=max_steps)


# Trainer settings that change speed or logging, not the weights a run ends with.
_NON_RESULT_SETTINGS = ("num_workers", "device", "progress", "log_every_steps", "checkpoint_every_steps",
                        "keep_checkpoints", "compile")


def pairs_per_clip(cfg: Config, method: PretrainMethod) -> int:
    """Training pairs drawn per clip in an epoch: ``pretrain.pairs_per_clip``, or the preset's when unset.

    Paper presets draw 1, so an epoch is one pass over the training clips as the papers count epochs
    (and the plateau patience counts passes); tiny presets draw 4, the budget their epochs were tuned on.
    """
    value = cfg.pretrain.pairs_per_clip
    value = int(method.hparams["pairs_per_clip"]) if value is None else int(value)
    if value < 1:
        raise ConfigError(f"pretrain.pairs_per_clip must be >= 1, got {value}")
    return value


def run_key(cfg: Config, method: PretrainMethod, tcfg) -> str:
    """A run folder per (method, preset, hyper-parameters, trainer settings, pairs, clip index, code): the same
    command resumes its own run, and a changed parameter starts a new one instead of resuming a run
    that was trained differently."""
    settings = {k: v for k, v in dataclasses.asdict(tcfg).items() if k not in _NON_RESULT_SETTINGS}
    pc = cfg.pretrain
    index_csv = Path(cfg.paths.clips_dir) / "index.csv"
    blob = json.dumps({"signature": method.signature(), "train": settings, "code": code_fingerprint(), "pairs_per_clip": pairs_per_clip(cfg, method),
                       "splits": [pc.train_split, pc.val_split], "val_pairs": pc.val_pairs,
                       "index_sha256": hashlib.sha256(index_csv.read_bytes()).hexdigest()},
                      sort_keys=True, default=str)
    return f"{method.preset}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def prune_other_runs(runs_dir: Path, keep: Path) -> None:
    """Only the finished run stays: the method folder is a DVC output, and old runs would be versioned."""
    for run in runs_dir.iterdir():
        if run.is_dir() and run != keep:
            shutil.rmtree(run)


# The finished run's record in its own folder (part of the method folder, a persistent DVC output): the
# checkpoint it ended on, model.pt's digest and the metrics it published. DVC deletes
# metrics/pretrain_<method>.json before rerunning the stage (for a change that leaves the run key as it
# was, e.g. pretrain.train.device); the record lets the rerun put back the same bytes instead of
# "resuming" a finished run, which trains nothing and would report no loss and no throughput.
PUBLISHED_FILE = "published.json"


def finished_run(run_dir: Path) -> dict[str, Any] | None:
    """The record of ``run_dir`` if it finished and published, with its final checkpoint still there."""
    try:
        record = json.loads((run_dir / PUBLISHED_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    latest = find_latest_checkpoint(run_dir)
    if latest is None or latest.name != record.get("checkpoint"):
        return None
    return record


def restore_finished(run: PreparedRun, record: dict[str, Any], metrics_path: Path) -> dict[str, Any]:
    """Leave a finished run's model.pt and metrics as published; put back whichever is missing."""
    model_path = run.method_dir / "model.pt"
    if model_sha256(model_path) != record["model_sha256"]:
        # Lost or replaced: the final checkpoint holds the weights the run ended with.
        state = load_checkpoint(run.run_dir / "checkpoints" / record["checkpoint"])
        run.method.load_state_dict(state["model"])
        record = {**record, "model_sha256": save_model(run.method, model_path)}
        write_json_atomic(run.run_dir / PUBLISHED_FILE, record)
    write_json_atomic(metrics_path, record["metrics"])  # the same dict: the same bytes
    log.info("pretrain %s: run %s already finished; model.pt and %s kept as it published them",
             run.method.name, run.run_dir, metrics_path)
    return record["metrics"]


def publish_logs(run_dir: Path, method_dir: Path) -> None:
    """Copy the finished run's logs beside model.pt, at fixed paths that dvc.yaml's plots name."""
    for rel in ("metrics.jsonl", "plots/loss.csv", "plots/val_accuracy.csv", "train_summary.json"):
        if (run_dir / rel).is_file():
            with atomic_path(method_dir / rel) as tmp:
                shutil.copyfile(run_dir / rel, tmp)


@dataclasses.dataclass
class PreparedRun:
    """Everything `avssl pretrain` trains with; the throughput benchmark uses the same."""

    method: PretrainMethod
    train_set: PairDataset
    val_set: PairDataset
    train_config: Any
    method_dir: Path
    run_dir: Path
    num_clips: int


def prepare_pretraining(cfg: Config, name: str, preset: str) -> PreparedRun:
    pc = cfg.pretrain
    torch.manual_seed(pc.train.seed)  # before building: the initial weights are what a seed reproduces
    method = build_pretrain_method(cfg, name, preset)

    index = ClipIndex.from_csv(Path(cfg.paths.clips_dir) / "index.csv", splits=pc.train_split)
    check_clip_resolution(index, method.hparams.get("short_side"), method=name, preset=preset)
    spec = method.pair_spec()
    sampler = PairSampler(index, spec, pc.train.seed, samples_per_epoch=pairs_per_clip(cfg, method) * len(index))
    # Input statistics (Z-normalisation) from a random 20% of the training pairs (AVTS Sec. 3.1); they are
    # buffers of the method, so they travel in checkpoints and in model.pt. A method without any fits none.
    frames = configured_frames_dir(cfg, pc.train_split)
    method.fit_normalization(PairDataset(sampler, frame_store=frames), fraction=0.2, seed=pc.train.seed)
    # The workers decode and draw (the host half); the trainer finishes each batch on the device.
    train_set = PairDataset(sampler, preprocess=method.preprocess(train=True).host,
                            video_decoder=pc.train.video_decoder, frame_store=frames)
    val_set = held_out_pairs(cfg, method, PROTOCOLS["easy"])
    tcfg = trainer_config(cfg, method, len(train_set))
    method_dir = Path(pc.out_dir) / name
    return PreparedRun(method=method, train_set=train_set, val_set=val_set, train_config=tcfg,
                       method_dir=method_dir, run_dir=method_dir / "runs" / run_key(cfg, method, tcfg),
                       num_clips=len(index))


def run_pretrain(cfg: Config, method_name: str | None = None, preset: str | None = None, *,
                 on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """``on_epoch_end(epoch, record)`` is passed to the trainer (an ablation reports and prunes there)."""
    started = time.perf_counter()
    pc = cfg.pretrain
    name, preset = method_name or pc.method, preset or pc.preset
    run = prepare_pretraining(cfg, name, preset)
    method, train_set, val_set, tcfg = run.method, run.train_set, run.val_set, run.train_config
    method_dir, out_dir = run.method_dir, run.run_dir
    metrics_path = Path(cfg.paths.metrics_dir) / f"pretrain_{name}.json"
    record = finished_run(out_dir)
    if record is not None:
        main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun only the main process writes
        return restore_finished(run, record, metrics_path) if main_process else record["metrics"]
    log.info("pretrain %s/%s: %d clips, %d pairs per epoch, %d epochs, batch %d", name, preset, run.num_clips,
             len(train_set), tcfg.epochs, tcfg.batch_size)
    summary = train(method, train_set, cfg=tcfg, out_dir=out_dir, val_set=val_set,
                    collate=collate_skipping_failures, on_epoch_end=on_epoch_end)
    if int(os.environ.get("RANK", "0")) != 0:
        return summary  # under torchrun only the main process evaluates and writes

    prune_other_runs(method_dir / "runs", keep=out_dir)
    publish_logs(out_dir, method_dir)
    model_path = method_dir / "model.pt"
    model_digest = save_model(method, model_path)
    metrics = {
        "method": name,
        "preset": preset,
        "data": str(Path(cfg.paths.clips_dir) / "index.csv"),
        **measure_pretext(cfg, method),  # protocol (split, pairs, chance), pretext accuracy per protocol
        "train_loss": summary.get("train_loss"),
        "epochs": summary.get("epochs_completed"),
        "steps": summary.get("global_step"),
        "samples_per_s": summary.get("samples_per_s"),
        "data_wait_fraction": summary.get("data_wait_fraction"),
        "peak_rss_mb": summary.get("peak_rss_mb"),
        "failed_samples": summary.get("failed_count"),
        "seconds": round(time.perf_counter() - started, 1),
        "model": str(model_path),
        "run_dir": str(out_dir),
    }
    write_json_atomic(metrics_path, metrics)
    if summary.get("checkpoint"):
        write_json_atomic(out_dir / PUBLISHED_FILE, {"checkpoint": Path(summary["checkpoint"]).name,
                                                     "model_sha256": model_digest, "metrics": metrics})
    log.info("pretrain %s: pretext accuracy %s (chance %.3g)", name, metrics["pretext_accuracy"],
             metrics["protocol"]["chance"])
    return metrics
