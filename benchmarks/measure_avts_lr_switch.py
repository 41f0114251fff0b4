"""AVTS's learning rate per epoch across its curriculum switch, in a short real run.

The real data stages make a small synthetic world (8 videos of 6 s at 64x64, 3 s clips: 16 training
clips); the real pretrain stage trains AVTS's tiny preset on it for ``--epochs`` epochs of one pair per
clip (2 optimizer steps of 8), with hard negatives from ``--hard-from`` and a plateau patience of
``--patience`` (1 by default, so that a short run can show decays; AVTS's own is 5). It prints a Markdown
table: per epoch the curriculum stage, the mean training loss, the rate the epoch trained at and the rate
after the epoch's plateau step (what metrics.jsonl logs).

    .venv/bin/python benchmarks/measure_avts_lr_switch.py --work /tmp/avts_lr
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from avssl_core.config import load_config
from avssl_core.methods.avts import AVTS
from avssl_core.stages.acquire import run_acquire
from avssl_core.stages.pretrain import run_pretrain
from avssl_core.stages.segment import run_segment
from avssl_core.stages.validate import run_validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the world and the run (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hard-from", type=int, default=4, help="0-based epoch where hard negatives start")
    parser.add_argument("--patience", type=int, default=1)
    args = parser.parse_args()
    root = args.work or Path(tempfile.mkdtemp(prefix="avts_lr_"))
    world = [f"paths.raw_dir={root / 'raw'}", f"paths.acquired_dir={root / 'acquired'}",
             f"paths.validated_dir={root / 'validated'}", f"paths.clips_dir={root / 'clips'}",
             f"paths.metrics_dir={root / 'metrics'}",
             "synth.num_videos=8", "synth.duration_s=6.0", "synth.width=64", "synth.height=64",
             "synth.workers=1", "acquire.workers=1", "validate.workers=1", "segment.workers=1",
             "segment.clip_seconds=3.0", "segment.short_side=64",
             # one video per class puts every video in train: hold the pretext pairs out of it
             "pretrain.val_split=train", "evaluate.split=train"]
    if not (root / "clips" / "index.csv").is_file():
        cfg = load_config(None, world)
        run_acquire(cfg)
        run_validate(cfg)
        run_segment(cfg)
    cfg = load_config(None, [
        *world, f"pretrain.out_dir={root / 'pretrain'}", "pretrain.val_pairs=8", "pretrain.pairs_per_clip=1",
        "pretrain.train.batch_size=8", f"pretrain.train.epochs={args.epochs}", "pretrain.train.progress=false",
        "pretrain.train.num_workers=0",
        f"pretrain.hparams={{avts: {{hard_from_epoch: {args.hard_from}, plateau_patience: {args.patience}}}}}"])
    metrics = run_pretrain(cfg, "avts", "tiny")
    lines = (Path(metrics["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    epochs = [r for r in map(json.loads, lines) if r["type"] == "epoch"]
    print("| epoch | curriculum stage | mean train loss | lr during the epoch | lr after its plateau step |")
    print("| --- | --- | --- | --- | --- |")
    rate = AVTS.PRESETS["tiny"]["lr"]  # the first epoch's (the tiny preset has no warm-up)
    for record in epochs:
        print(f"| {record['epoch']} | {record['curriculum_stage']} | {record['train_loss']:.4f} | {rate:g} | "
              f"{record['lr']:g} |")
        rate = record["lr"]


if __name__ == "__main__":
    main()
