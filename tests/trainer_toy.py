"""A tiny method, dataset and sampler for the trainer tests; also a script, for subprocess and torchrun runs.

    python tests/trainer_toy.py --out DIR [--epochs N ...]
    torchrun --nproc_per_node 2 tests/trainer_toy.py --out DIR ...

Everything here is small enough to train for a few dozen steps on one CPU thread in about a second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, default_collate

from avssl_core.methods.base import OptimSpec, PretrainMethod, StepOutput
from avssl_core.pretext.spec import PairKind, PairSpec
from avssl_core.train import FAILED_KEY, TrainConfig, train

VIDEO_SHAPE = (3, 4, 8, 8)  # C, T, H, W
AUDIO_SAMPLES = 64
PAD_INDEX = -1  # the sampler's padding position (no sample), as in avssl_core.pretext


class ToyAV(PretrainMethod):
    """Conv3d on fake video + Conv2d on fake audio 'spectrograms', with dropout (so resume must restore
    the RNG)."""

    name = "toy_av"
    PRESETS = {
        "tiny": {"width": 8, "dropout": 0.2, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                 "schedule": "plateau", "plateau_patience": 0, "warmup_steps": 2,
                 # a plateau restart inside the resume test's 3 epochs: resume across it stays exact
                 "plateau_restart_epochs": [2]},
        "wide": {"width": 12, "dropout": 0.2, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                 "schedule": "cosine", "plateau_patience": 0, "warmup_steps": 0,
                 "plateau_restart_epochs": []},
    }

    def __init__(self, preset: str = "tiny", **overrides) -> None:
        super().__init__(preset, **overrides)
        width = self.hparams["width"]
        self.video = nn.Sequential(nn.Conv3d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                                   nn.Flatten())
        self.audio = nn.Sequential(nn.Unflatten(2, (8, AUDIO_SAMPLES // 8)), nn.Conv2d(1, width, 3, padding=1),
                                   nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(self.hparams["dropout"])
        self.head = nn.Linear(2 * width, 2)
        self.current_epoch = -1
        self.seen: list[tuple[int, int]] = []  # (epoch, index) of every training sample, for the DDP test

    def pair_spec(self) -> PairSpec:
        return PairSpec(video_frames=VIDEO_SHAPE[1], audio_seconds=0.004)

    def optim_spec(self) -> OptimSpec:
        h = self.hparams
        return OptimSpec(name=h["optimizer"], lr=h["lr"], momentum=h["momentum"], schedule=h["schedule"],
                         plateau_patience=h["plateau_patience"], warmup_steps=h["warmup_steps"],
                         plateau_restart_epochs=tuple(h["plateau_restart_epochs"]))

    def uses_3d_convolutions(self) -> bool:
        return True

    def on_epoch_start(self, epoch: int) -> None:
        self.current_epoch = epoch

    def _logits(self, batch):
        features = torch.cat([self.video(batch["video"]), self.audio(batch["audio"])], dim=1)
        return self.head(self.dropout(features))

    def training_step(self, batch) -> StepOutput:
        self.seen.extend((self.current_epoch, int(i)) for i in batch["index"])
        logits = self._logits(batch)
        loss = F.cross_entropy(logits, batch["label"])
        correct = (logits.argmax(1) == batch["label"]).float()
        return StepOutput(loss=loss, metrics={"acc": float(correct.mean())}, correct=correct,
                          kinds=batch["kind"])

    @torch.no_grad()
    def evaluation_step(self, batch) -> StepOutput:
        logits = self._logits(batch)
        correct = (logits.argmax(1) == batch["label"]).float()
        return StepOutput(loss=F.cross_entropy(logits, batch["label"]), metrics={}, correct=correct,
                          kinds=batch["kind"])


class OtherToy(ToyAV):
    name = "other_toy"


class ToyPairs(Dataset):
    """Items depend only on (epoch, index). ``broken`` indices fail to 'decode'; ``delay_s`` slows each
    item down so a test can kill a run between two checkpoints."""

    def __init__(self, size: int, *, broken: tuple[int, ...] = (), delay_s: float = 0.0,
                 flip_labels_from: int | None = None) -> None:
        self.size, self.broken, self.delay_s = size, set(broken), delay_s
        self.flip_labels_from = flip_labels_from  # from this epoch the labels are inverted: the loss jumps
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if index == PAD_INDEX:
            return {"_padding": True}
        if self.delay_s:
            time.sleep(self.delay_s)
        if index in self.broken:
            return {"_decode_error": f"clip_{index:03d}.mp4"}
        g = torch.Generator().manual_seed(10_000 * self.epoch + index)
        label = index % 2
        flipped = self.flip_labels_from is not None and self.epoch >= self.flip_labels_from
        return {
            "video": torch.randn(VIDEO_SHAPE, generator=g) + 0.5 * label,
            "audio": torch.randn(1, AUDIO_SAMPLES, generator=g) + 0.5 * label,
            "label": 1 - label if flipped else label,
            "kind": int(PairKind.POSITIVE) if label else int(PairKind.EASY),
            "index": index,
        }


def collate_with_failures(items: list[dict]) -> dict:
    """Like the pair pipeline's collate: drop padding silently, drop undecodable items and name them
    under "_failed" (in the pipeline's dict form)."""
    failed = [item["_decode_error"] for item in items if "_decode_error" in item]
    decoded = [item for item in items if "_decode_error" not in item and "_padding" not in item]
    batch = default_collate(decoded) if decoded else {}
    batch[FAILED_KEY] = {"num_failed": len(failed), "failed": failed, "reasons": ["toy decode error"] * len(failed)}
    return batch


class ToySampler:
    """Like the pipeline's sampler: shuffle from (seed, epoch), pad the end with PAD_INDEX to a multiple of
    world_size (so a rank's last batch can be empty), deal out by rank, skip the consumed batches."""

    def __init__(self, num_samples: int, *, seed: int, epoch: int, rank: int, world_size: int,
                 start_step: int = 0, batch_size: int) -> None:
        order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(1000 * seed + epoch))
        padded = order.tolist() + [PAD_INDEX] * ((-num_samples) % world_size)
        self.indices = padded[rank::world_size][start_step * batch_size:]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def run_toy(out_dir: Path, *, preset: str = "tiny", method_cls=ToyAV, dataset_size: int = 40,
            broken: tuple[int, ...] = (), delay_s: float = 0.0, val_size: int = 0,
            overrides: dict | None = None, flip_labels_from: int | None = None, **cfg_fields):
    """Build the toy method (``overrides``: hyper-parameters) and data, train, return (method, summary)."""
    torch.manual_seed(0)  # the same initial weights in every process
    method = method_cls(preset, **(overrides or {}))
    fields = {"epochs": 3, "batch_size": 4, "device": "cpu", "seed": 7, "checkpoint_every_steps": 2,
              "keep_checkpoints": 0, "log_every_steps": 1, "deterministic": True, "progress": False}
    cfg = TrainConfig(**{**fields, **cfg_fields})
    summary = train(method, ToyPairs(dataset_size, broken=broken, delay_s=delay_s,
                                                   flip_labels_from=flip_labels_from), cfg=cfg, out_dir=out_dir,
                    val_set=ToyPairs(val_size) if val_size else None, make_sampler=ToySampler,
                    collate=collate_with_failures)
    return method, summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--dataset-size", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--report", type=Path, help="write this rank's samples and final weights here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    method, summary = run_toy(args.out, epochs=args.epochs, batch_size=args.batch_size,
                              grad_accum_steps=args.grad_accum, num_workers=args.num_workers,
                              dataset_size=args.dataset_size, delay_s=args.delay)
    if args.report:
        rank = int(os.environ.get("RANK", "0"))
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / f"seen_rank{rank}.json").write_text(json.dumps(method.seen))
        torch.save(method.state_dict(), args.report / f"weights_rank{rank}.pt")
        (args.report / f"summary_rank{rank}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
