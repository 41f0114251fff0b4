"""Training throughput of a method and preset on the clip index: pairs/s, the share of step time spent
waiting for data, peak memory and, from torch.utils.flop_counter, model FLOPs per pair; on a GPU with a
known peak, model FLOPs utilization (MFU).

    .venv/bin/python benchmarks/bench_train.py --method avts --preset tiny --steps 30
    .venv/bin/python benchmarks/bench_train.py --method avc --preset paper --steps 5 --set pretrain.train.num_workers=2

It runs what `avssl pretrain` runs (the same data, preprocessing and trainer) for ``--steps`` optimizer
steps in a scratch folder; params.yaml and ``--set`` overrides apply as for the CLI. Needs the clips
(`dvc repro segment` first).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from avssl_core.config import load_config
from avssl_core.pretext.dataset import collate_skipping_failures
from avssl_core.stages.pretrain import prepare_pretraining
from avssl_core.train.trainer import train

# Dense bf16 tensor-core peaks (FLOP/s) for MFU; other devices report achieved FLOP/s only.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def flops_per_pair(run, batch_size: int) -> float:
    """Forward + backward FLOPs of one training step, per pair, counted on a real batch."""
    samples = [run.train_set[i] for i in range(batch_size)]
    batch = collate_skipping_failures(samples)
    batch.pop("_failed", None)
    return step_flops(run.method, batch) / batch_size


def step_flops(method, batch: dict) -> int:
    """Forward + backward FLOPs of one training step of ``method`` on a collated ``batch`` (of the pair
    dataset's host items: the device half of the data path runs first, and is not counted)."""
    method = method.train()
    device = next(method.parameters()).device
    batch = method.device_transform({k: v.to(device) if isinstance(v, torch.Tensor) else
                                     [x.to(device) for x in v] if isinstance(v, list) else v
                                     for k, v in batch.items()})
    counter = FlopCounterMode(display=False)
    with counter:
        out = method.training_step(batch)
        out.loss.backward()
    method.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def device_peak() -> tuple[str, float | None]:
    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    return name, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="avts")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps to time")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="avssl-bench-train-") as scratch:
        cfg = load_config(args.params, [*args.overrides, f"pretrain.out_dir={scratch}",
                                        f"pretrain.train.max_steps={args.steps}", "pretrain.train.progress=false",
                                        f"pretrain.train.checkpoint_every_steps={10 * args.steps}"])
        run = prepare_pretraining(cfg, args.method, args.preset)
        tcfg = run.train_config
        # Counted on the training device (a paper preset's step takes minutes on the CPU).
        run.method.to("cuda" if tcfg.device == "cuda" or (tcfg.device == "auto" and torch.cuda.is_available())
                      else "cpu")
        per_pair = flops_per_pair(run, min(tcfg.batch_size, 4))
        started = time.perf_counter()
        # No validation set: this measures training alone.
        summary = train(run.method, run.train_set, cfg=tcfg, out_dir=Path(scratch) / "run",
                        collate=collate_skipping_failures)
        wall = time.perf_counter() - started
    device, peak = device_peak()
    pairs_per_s = summary["samples_per_s"]
    result = {
        "method": args.method,
        "preset": args.preset,
        "device": device,
        "precision": summary["precision"],
        "batch_size": tcfg.batch_size,
        "num_workers": tcfg.num_workers,
        "steps": summary["global_step"],
        "pairs_per_s": round(pairs_per_s, 2),
        "data_wait_fraction": round(summary["data_wait_fraction"], 4),
        "peak_rss_mb": summary.get("peak_rss_mb"),
        "peak_cuda_mb": summary.get("peak_cuda_mb"),
        "model_gflops_per_pair": round(per_pair / 1e9, 3),
        "achieved_tflops": round(per_pair * pairs_per_s / 1e12, 4),
        "mfu": round(per_pair * pairs_per_s / peak, 4) if peak else None,
        "wall_s": round(wall, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
