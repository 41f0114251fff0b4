"""The real pretrain stage with CMAC, as a script for a 2-process torchrun (gloo on CPU) in
tests/test_torchrun_methods.py:

    torchrun --standalone --nproc_per_node 2 tests/torchrun_cmac.py --clips-dir DIR --out DIR --report DIR

Each rank records the clip ids of the keys it computed itself (read at each optimizer step, before the
bank write gathers every rank's keys) and, at the end, its memory banks; the test compares them.
Nothing in the method or the trainer is replaced: the recording wraps ``after_optimizer_step``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from avssl_core.config import load_config
from avssl_core.methods.cmac import CMAC
from avssl_core.stages.pretrain import run_pretrain

LOCAL_CLIPS: list[list[int]] = []  # per optimizer step, the clip ids of this rank's own keys
BANKS: dict[str, torch.Tensor] = {}


def _recording(original):
    def after_optimizer_step(self: CMAC) -> None:
        LOCAL_CLIPS.append([int(c) for part in self._pending for c in part[2].tolist()])
        original(self)
        BANKS.update({"video_keys": self.video_bank.keys.clone(), "audio_keys": self.audio_bank.keys.clone(),
                      "clips": self.video_bank.clips.clone(), "sources": self.video_bank.sources.clone()})
    return after_optimizer_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(None, [
        f"paths.clips_dir={args.clips_dir}", f"paths.metrics_dir={args.out / 'metrics'}",
        f"pretrain.out_dir={args.out / 'pretrain'}", "pretrain.val_split=train", "pretrain.val_pairs=8",
        "pretrain.pairs_per_clip=1", "pretrain.train.batch_size=4", f"pretrain.train.max_steps={args.steps}",
        "pretrain.train.epochs=1", "pretrain.train.progress=false", "pretrain.train.device=cpu"])
    CMAC.after_optimizer_step = _recording(CMAC.after_optimizer_step)
    summary = run_pretrain(cfg, "cmac", "tiny")
    rank = int(os.environ.get("RANK", "0"))
    args.report.mkdir(parents=True, exist_ok=True)
    torch.save(BANKS, args.report / f"bank_rank{rank}.pt")
    (args.report / f"rank{rank}.json").write_text(json.dumps({
        "local_clips": LOCAL_CLIPS, "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "steps": summary.get("steps", summary.get("global_step"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
