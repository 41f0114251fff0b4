"""The data path of every method and preset, split at the device boundary: how many training samples one
CPU core prepares per second, how long the training device takes per batch, and so how many cores an H100
needs to stay busy.

    .venv/bin/python benchmarks/data_path.py --make-clips /tmp/avssl-data-path --compare-unsplit --json data_path.json
    .venv/bin/python benchmarks/data_path.py --clips 128=data/clips/index.csv --presets tiny
    .venv/bin/python benchmarks/data_path.py --make-clips /tmp/avssl-data-path --flops-json data_path.json
    .venv/bin/python benchmarks/data_path.py --make-clips /tmp/avssl-data-path --frames store --flops-json data_path.json

``--frames store`` reads the frames from the frame store beside each clip index (``<clips_dir>_frames``,
which the segment stage writes and training reads; avssl_core/data/frame_store.py) instead of decoding the
mp4s, as the pretrain stage does by default; ``--frames mp4`` (the default here) times the decoder.

``--flops-json`` takes the FLOPs per pair from an earlier run's JSON and skips the model's forward +
backward, which takes minutes per paper preset on a CPU (the data path, not the model, is what changes).

CPU side: the pair dataset's ``__getitem__`` with the host half of the preset's training transform
(``method.preprocess(train=True).host``: decode, draw the augmentations, cut the uint8 crop, fit the
waveform), as the pretrain stage's DataLoader workers run it, in this process on one thread
(``torch.set_num_threads(1)``), over ``--samples`` items in a seeded random order after two warm-up items:
samples/s per core, counted against this process's CPU time, so that other jobs sharing the core do not
lower it (samples per wall second are reported too). For comparison, the same items through the whole
per-sample transform (host and device halves on one sample, on the CPU: what the workers did before the
split) give "unsplit" samples/s per core.
Device side, on one collated batch on the available device (CUDA with bf16 autocast for the model, else the
CPU in fp32 on torch's default threads; the output names which): seconds per batch of the device half of
the data path (``method.device_transform``: resize, flip, jitter, normalisation, spectrograms, SpecAugment,
in fp32) and of the model's forward + backward.
FLOPs per pair: counted by torch.utils.flop_counter on that batch (bench_train.step_flops, the figure the
README's GFLOP-per-pair column comes from). Cores per H100 = pairs/s an H100 consumes at 30% MFU
(0.3 x 989 TFLOP/s dense bf16 = 297 TFLOP/s, / FLOPs per pair) / samples/s per core of the CPU side.

Each preset reads clips whose short side is at least its own ``short_side`` (the smallest such set given),
so nothing is upsampled; a preset with no such clips is listed as skipped. ``--make-clips DIR`` synthesizes
a small world at 256 px and segments it at 128 and 256 px into DIR with the real data stages (reused when
DIR already holds them). AVTS's normalisation statistics are fitted on 4 pairs, not the stage's 20% of an
epoch (the work per sample is the same).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import step_flops  # noqa: E402  (a sibling script, not a package)

from avssl_core.data.frame_store import frames_dir_of  # noqa: E402
from avssl_core.methods.registry import METHODS, build_method  # noqa: E402
from avssl_core.pretext.clip_index import ClipIndex  # noqa: E402
from avssl_core.pretext.dataset import PairDataset, collate_skipping_failures  # noqa: E402
from avssl_core.pretext.resolution import stored_short_side  # noqa: E402
from avssl_core.pretext.sampling import PairSampler  # noqa: E402

H100_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak
TARGET_MFU = 0.3
SEED = 0


def make_clips(root: Path, short_sides: tuple[int, ...] = (128, 256), *, videos: int = 4,
               seconds: float = 20.0) -> dict[int, Path]:
    """A small synthetic world rendered at the largest short side, segmented into 10 s clips at each."""
    workers = max(1, min(videos, (os.cpu_count() or 1) // 2))
    from avssl_core.config import load_config
    from avssl_core.stages.acquire import run_acquire
    from avssl_core.stages.segment import run_segment
    from avssl_core.stages.validate import run_validate

    base = [f"paths.raw_dir={root / 'raw'}", f"paths.acquired_dir={root / 'acquired'}",
            f"paths.validated_dir={root / 'validated'}", f"paths.metrics_dir={root / 'metrics'}",
            f"synth.num_videos={videos}", f"synth.duration_s={seconds}", f"synth.width={max(short_sides)}",
            f"synth.height={max(short_sides)}",
            *[f"{stage}.workers={workers}" for stage in ("synth", "acquire", "validate", "segment")],
            "segment.clip_seconds=10.0", "pretrain.val_split=train", "evaluate.split=train",
            "segment.frame_store_splits=[]"]  # every split's clips in the frame store (--frames store)
    indexes = {side: root / f"clips{side}" / "index.csv" for side in short_sides}
    if all(path.is_file() and frames_dir_of(path.parent).is_dir() for path in indexes.values()):
        return indexes
    cfg = load_config(None, [*base, f"paths.clips_dir={root / 'clips'}"])
    run_acquire(cfg)
    run_validate(cfg)
    for side, index in indexes.items():
        if not index.is_file() or not frames_dir_of(index.parent).is_dir():  # a rerun only builds the store
            run_segment(load_config(None, [*base, f"paths.clips_dir={index.parent}", f"segment.short_side={side}"]))
    return indexes


def pick_clips(indexes: dict[int, ClipIndex], needed: int) -> ClipIndex | None:
    """The smallest clip set whose short side is at least ``needed``."""
    fitting = sorted((side, index) for side, index in indexes.items() if side >= needed)
    return fitting[0][1] if fitting else None


def cpu_side(dataset: PairDataset, samples: int) -> tuple[float, float, int]:
    """``dataset[i]`` on one thread in random order: samples per wall second, samples per second of this
    process's CPU time (what one core gives when nothing else runs on it), and how many items failed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        order = np.random.default_rng(SEED).permutation(len(dataset))
        for i in order[:2]:
            dataset[int(i)]  # warm-up: opens decoders, builds filterbanks
        timed = [int(order[k % len(order)]) for k in range(2, 2 + samples)]
        wall, cpu = time.perf_counter(), time.process_time()
        failed = sum(not isinstance(dataset[i], dict) for i in timed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    return samples / wall, samples / cpu, failed


def to_device(batch: dict, device: torch.device) -> dict:
    def move(v):
        if isinstance(v, list):
            return [x.to(device, non_blocking=True) for x in v]
        return v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
    return {k: move(v) for k, v in batch.items()}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def transform_side(method, host_batch: dict, device: torch.device, repeats: int) -> tuple[dict, float, float]:
    """The device half of the data path on ``host_batch``: (the model inputs, wall seconds per batch, this
    process's CPU seconds per batch), means of ``max(repeats, 1)`` after one warm-up. On the CPU the CPU
    seconds are the figure that other jobs sharing the cores do not inflate."""
    method = method.to(device).train()
    batch = method.device_transform(to_device(host_batch, device))  # warm-up: device copies of filterbanks
    wall, cpu = [], []
    for _ in range(max(repeats, 1)):
        _synchronize(device)
        started, cpu_started = time.perf_counter(), time.process_time()
        batch = method.device_transform(to_device(host_batch, device))
        _synchronize(device)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return batch, float(np.mean(wall)), float(np.mean(cpu))


def device_side(method, batch: dict, device: torch.device, repeats: int) -> tuple[float, int]:
    """Seconds per forward + backward on ``batch`` (model inputs, on ``device``; mean of ``repeats`` after
    one warm-up), and the step's FLOPs (counted on the warm-up step)."""
    method = method.to(device).train()
    flops = step_flops(method, batch)  # also the warm-up
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        with autocast:
            out = method.training_step(batch)
        out.loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
        method.zero_grad(set_to_none=True)
    return float(np.mean(times)), flops


def measure(name: str, preset: str, indexes: dict[int, ClipIndex], *, samples: int, device: torch.device,
            device_batch: int | None, repeats: int, compare_unsplit: bool = False,
            known_flops: dict[tuple[str, str], float] | None = None, frames: str = "mp4") -> dict:
    torch.manual_seed(SEED)
    method = build_method(name, preset)
    needed = int(method.hparams.get("short_side", 0))
    row: dict = {"method": name, "preset": preset, "needs_short_side": needed}
    index = pick_clips(indexes, needed)
    if index is None:
        return {**row, "skipped": f"no clips with a short side >= {needed} px (have {sorted(indexes)})"}
    sampler = PairSampler(index, method.pair_spec(), SEED, samples_per_epoch=max(len(index), samples + 2))
    if hasattr(method, "fit_normalization"):
        # AVTS's Z-norm statistics, from a few pairs (the stage uses 20%; the work per sample is the same).
        method.fit_normalization(PairDataset(PairSampler(index, method.pair_spec(), SEED, samples_per_epoch=4)),
                                 fraction=1.0, seed=SEED)
    transform = method.preprocess(train=True)
    store = frames_dir_of(Path(index.source).parent) if frames == "store" else None
    if store is not None and not store.is_dir():
        raise SystemExit(f"--frames store: {index.source} has no frame store ({store}); run `avssl segment` with "
                         f"segment.frame_store=true for those clips, or use --make-clips")
    dataset = PairDataset(sampler, preprocess=transform.host, frame_store=store)
    per_wall_s, per_core, failed = cpu_side(dataset, samples)
    unsplit = (cpu_side(PairDataset(sampler, preprocess=transform, frame_store=store), samples)[1]
               if compare_unsplit else None)
    batch_size = device_batch or (int(method.hparams["batch_size"]) if device.type == "cuda" else 2)
    items = [item for item in (dataset[i] for i in range(batch_size)) if isinstance(item, dict)]
    host_batch = collate_skipping_failures(items)
    host_batch.pop("_failed", None)
    batch, transform_s, transform_cpu_s = transform_side(method, host_batch, device, repeats)
    if known_flops is None:
        seconds, flops = device_side(method, batch, device, repeats)
        per_pair = flops / len(items)
    else:  # the model's step is not run: its FLOPs per pair come from an earlier run of this benchmark
        seconds, per_pair = None, known_flops[(name, preset)]
    needed_pairs = TARGET_MFU * H100_BF16_FLOPS / per_pair
    return {**row, "clips": index.source, "clips_short_side": stored_short_side(index), "frames": frames,
            "cpu_samples": samples, "cpu_failed": failed, "cpu_samples_per_wall_s": round(per_wall_s, 2),
            "cpu_samples_per_s_per_core": round(per_core, 2),
            **({"unsplit_cpu_samples_per_s_per_core": round(unsplit, 2)} if unsplit is not None else {}),
            "device": device.type, "device_batch": len(items),
            "device_transform_s_per_batch": round(transform_s, 4),
            "device_transform_cpu_s_per_batch": round(transform_cpu_s, 4),
            "device_s_per_batch": None if seconds is None else round(seconds, 4),
            "device_pairs_per_s": None if seconds is None else round(len(items) / seconds, 2),
            "gflop_per_pair": round(per_pair / 1e9, 3),
            "h100_pairs_per_s_at_30pct_mfu": round(needed_pairs, 1),
            "cores_per_h100": round(needed_pairs / per_core, 1)}


def table(rows: list[dict]) -> str:
    lines = ["| method | preset | clips (frames from) | CPU side samples/s per core (per wall s) | unsplit samples/s per core "
             "| device s per batch: transform (CPU time on a CPU) / model (batch) | GFLOP per pair | H100 pairs/s at 30% MFU "
             "| cores per H100 |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['method']} | {r['preset']} | skipped: {r['skipped']} | | | | | | |")
            continue
        transform = r["device_transform_cpu_s_per_batch" if r["device"] == "cpu" else "device_transform_s_per_batch"]
        lines.append(f"| {r['method']} | {r['preset']} | {r['clips_short_side']} px ({r['frames']}) | {r['cpu_samples_per_s_per_core']} ({r['cpu_samples_per_wall_s']}) "
                     f"| {r.get('unsplit_cpu_samples_per_s_per_core', '-')} "
                     f"| {transform} / {r['device_s_per_batch'] or '-'} {r['device']} ({r['device_batch']}) "
                     f"| {r['gflop_per_pair']} | {r['h100_pairs_per_s_at_30pct_mfu']:,} | {r['cores_per_h100']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", action="append", default=[], metavar="SHORT_SIDE=INDEX_CSV",
                        help="a clip index and its short side in pixels (repeatable)")
    parser.add_argument("--make-clips", type=Path, metavar="DIR",
                        help="synthesize and segment a small world at 128 and 256 px into DIR (reused)")
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), choices=sorted(METHODS))
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--samples", type=int, default=32, help="items timed on the CPU side")
    parser.add_argument("--device-batch", type=int,
                        help="batch for the device side (default: the preset's on CUDA, 2 on the CPU)")
    parser.add_argument("--repeats", type=int, default=1, help="timed device steps after the warm-up")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--compare-unsplit", action="store_true",
                        help="also time the whole per-sample transform on the CPU (the data path before the split)")
    parser.add_argument("--frames", choices=["mp4", "store"], default="mp4",
                        help="decode the clips' mp4s, or read the frame store beside each clip index (as training does)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--flops-json", type=Path,
                        help="an earlier run's --json: take each preset's GFLOP per pair from it and skip the "
                             "model's forward + backward (minutes per paper preset on a CPU)")
    args = parser.parse_args(argv)

    paths: dict[int, Path] = make_clips(args.make_clips) if args.make_clips else {}
    for item in args.clips:
        side, _, csv = item.partition("=")
        if not side.isdigit() or not csv:
            parser.error(f"--clips {item!r}: expected SHORT_SIDE=INDEX_CSV, e.g. 128=data/clips/index.csv")
        paths[int(side)] = Path(csv)
    if not paths:
        parser.error("give --clips SHORT_SIDE=INDEX_CSV or --make-clips DIR")
    # Every split: the benchmark times the data path, not a training run.
    # Media paths resolve against the current directory, as for the CLI (run from the project root).
    indexes = {side: ClipIndex.from_csv(csv, splits=None) for side, csv in paths.items()}
    for side, index in indexes.items():
        if stored_short_side(index) < side:
            parser.error(f"{index.source}: its clips have a {stored_short_side(index)} px short side, not {side}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    known_flops = None
    if args.flops_json:
        known_flops = {(r["method"], r["preset"]): r["gflop_per_pair"] * 1e9
                       for r in json.loads(args.flops_json.read_text())["rows"] if "gflop_per_pair" in r}
    rows = []
    for preset in args.presets:
        for name in args.methods:
            rows.append(measure(name, preset, indexes, samples=args.samples, device=device,
                                device_batch=args.device_batch, repeats=args.repeats,
                                compare_unsplit=args.compare_unsplit, known_flops=known_flops, frames=args.frames))
            print(json.dumps(rows[-1]), flush=True)  # a long run shows its progress
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "cpu_threads_device_side": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "load_average": os.getloadavg(), "rows": rows}
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
