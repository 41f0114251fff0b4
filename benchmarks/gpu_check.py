"""The GPU path in one run, written to one JSON: every paper preset's training throughput (bf16,
channels_last_3d, torch.compile: pairs/s, MFU, data-wait share, peak GPU memory), a 1-GPU torchrun over
NCCL, CUDA (NVDEC) decoding against CPU decoding, and one exact-resume check on the GPU.

    benchmarks/gpu_check.sh [--out gpu_check.json] [--work DIR]

Without a GPU it says so and runs its CPU dry run instead: the tiny presets, fp32, no torch.compile, gloo,
CPU decoding (``video_decoder: cuda`` then falls back, as it would on such a machine), a few steps, through
the same code and into the same JSON shape. tests/test_gpu_check.py runs the dry run, so it cannot rot.

Clips: a small synthetic world segmented at the short side the presets need (256 px for the paper
presets, 64 px for the tiny ones) with the real data stages, in ``--work``; ``--clips INDEX_CSV`` uses
clips already made instead. The throughput rows are benchmarks/bench_train.py's, the figures the trainer's
throughput summary gives.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train  # noqa: E402  (sibling scripts, not a package)
from data_path import make_clips  # noqa: E402

from avssl_core.config import load_config  # noqa: E402
from avssl_core.methods.registry import METHODS  # noqa: E402
from avssl_core.pretext.clip_index import ClipIndex  # noqa: E402
from avssl_core.pretext.dataset import collate_skipping_failures  # noqa: E402
from avssl_core.pretext.decode import CudaDecodingUnavailable, VideoFrameReader  # noqa: E402
from avssl_core.stages.pretrain import prepare_pretraining  # noqa: E402
from avssl_core.train.trainer import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str  # "gpu" or "cpu_dry_run"
    preset: str
    device: str
    precision: str
    compile: bool
    backend: str  # what the trainer's DDP uses on this device (train/distributed.py)
    video_decoder: str
    steps: int
    batch_size: int | None  # None: the preset's
    pairs_per_clip: int
    short_side: int  # clips made for the presets


GPU = Mode("gpu", "paper", "cuda", "bf16", True, "nccl", "cuda", steps=10, batch_size=None, pairs_per_clip=400,
           short_side=256)
# video_decoder cuda here too: a machine without CUDA takes the fallback path the option promises.
CPU_DRY_RUN = Mode("cpu_dry_run", "tiny", "cpu", "fp32", False, "gloo", "cuda", steps=2, batch_size=4,
                   pairs_per_clip=4, short_side=64)


def overrides(mode: Mode, clips: Path, work: Path) -> list[str]:
    """The settings every part of the check trains with."""
    return [f"paths.clips_dir={clips.parent}", f"paths.metrics_dir={work / 'metrics'}",
            f"pretrain.out_dir={work / 'pretrain'}", "pretrain.train_split=train", "pretrain.val_split=train",
            "pretrain.val_pairs=8", f"pretrain.pairs_per_clip={mode.pairs_per_clip}",
            f"pretrain.train.device={mode.device}", f"pretrain.train.precision={mode.precision}",
            f"pretrain.train.compile={str(mode.compile).lower()}", "pretrain.train.channels_last_3d=true",
            f"pretrain.train.video_decoder={mode.video_decoder}", "pretrain.train.progress=false",
            *([f"pretrain.train.batch_size={mode.batch_size}"] if mode.batch_size else [])]


def timed(part):
    """Run ``part``; its result with the seconds it took, or the error it raised (the check goes on)."""
    started = time.perf_counter()
    try:
        result = {"ok": True, **part()}
    except Exception as exc:  # noqa: BLE001  (one failed part must not hide the others' results)
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {**result, "seconds": round(time.perf_counter() - started, 1)}


def throughput(mode: Mode, method: str, clips: Path, work: Path) -> dict:
    out = work / f"throughput_{method}.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CudaDecodingUnavailable)  # reported once, by the decoding part
        bench_train.main(["--method", method, "--preset", mode.preset, "--steps", str(mode.steps),
                          "--params", str(ROOT / "params.yaml"), "--json", str(out),
                          *[a for o in overrides(mode, clips, work) for a in ("--set", o)]])
    return json.loads(out.read_text())


def torchrun(mode: Mode, clips: Path, work: Path) -> dict:
    """`avssl pretrain` under torchrun with one process: DDP, its process group and the main-rank writes."""
    env = {**os.environ, "NCCL_DEBUG": "INFO", "PYTHONWARNINGS": "ignore::UserWarning"}
    sets = [a for o in [*overrides(mode, clips, work / "torchrun"), f"pretrain.train.max_steps={mode.steps}",
                        "pretrain.train.compile=false"] for a in ("--set", o)]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                           "-m", "avssl_core.cli", "--params", str(ROOT / "params.yaml"), *sets,
                           "pretrain", "--method", "avc", "--preset", mode.preset],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exited {done.returncode}: {done.stderr[-2000:]}")
    metrics = json.loads((work / "torchrun" / "metrics" / "pretrain_avc.json").read_text())
    summary = json.loads((Path(metrics["run_dir"]) / "train_summary.json").read_text())
    return {"method": "avc", "nproc": 1, "world_size": summary["world_size"], "backend": mode.backend,
            "nccl_initialised": "NCCL INFO" in done.stdout + done.stderr, "steps": metrics["steps"],
            "pairs_per_s": metrics["samples_per_s"], "pretext_accuracy": metrics["pretext_accuracy"]}


def decoding(mode: Mode, clips: Path) -> dict:
    """Frames of a few clips decoded as ``video_decoder`` asks, against CPU decoding."""
    paths = [str(p) for p in ClipIndex.from_csv(clips, splits=None).video_path[:4]]
    frames = list(range(0, 25, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CudaDecodingUnavailable)
        reader = VideoFrameReader(device=mode.video_decoder)
        started = time.perf_counter()
        decoded = [reader.read(p, frames) for p in paths]
        seconds = time.perf_counter() - started
    cpu_reader = VideoFrameReader()
    started = time.perf_counter()
    reference = [cpu_reader.read(p, frames) for p in paths]
    cpu_seconds = time.perf_counter() - started
    diff = max(int((a.int() - b.int()).abs().max()) for a, b in zip(decoded, reference, strict=True))
    return {"requested": mode.video_decoder, "used": reader.device,
            "fallback_warnings": [str(w.message) for w in caught if issubclass(w.category, CudaDecodingUnavailable)],
            "clips": len(paths), "frames_per_clip": len(frames), "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3), "max_abs_diff_vs_cpu": diff}


def exact_resume(mode: Mode, clips: Path, work: Path) -> dict:
    """Weights after N steps straight == after N/2 steps, a stop, and a resume to N (deterministic kernels)."""
    steps = max(2, mode.steps - mode.steps % 2)
    base = [*overrides(mode, clips, work / "resume"), "pretrain.train.deterministic=true",
            "pretrain.train.compile=false", "pretrain.train.checkpoint_every_steps=1"]

    def run_to(out: Path, max_steps: int):
        cfg = load_config(ROOT / "params.yaml", [*base, f"pretrain.train.max_steps={max_steps}"])
        run = prepare_pretraining(cfg, "avc", mode.preset)  # seeds, then builds the same initial weights
        tcfg = dataclasses.replace(run.train_config, max_steps=max_steps)
        summary = train(run.method, run.train_set, cfg=tcfg, out_dir=out, collate=collate_skipping_failures)
        return run.method, summary

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CudaDecodingUnavailable)
        straight, _ = run_to(work / "resume" / "straight", steps)
        run_to(work / "resume" / "stopped", steps // 2)
        resumed, summary = run_to(work / "resume" / "stopped", steps)
    a, b = straight.state_dict(), resumed.state_dict()
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    return {"method": "avc", "steps": steps, "stopped_at": steps // 2, "resumed_from": summary["resumed_from"],
            "bit_exact": not mismatched and summary["resumed_from"] is not None, "mismatched_tensors": mismatched[:10]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--clips", type=Path, help="an index.csv to use instead of making clips")
    parser.add_argument("--cpu", action="store_true", help="run the CPU dry run even where a GPU is present")
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), choices=sorted(METHODS))
    args = parser.parse_args(argv)

    gpu = torch.cuda.is_available() and not args.cpu
    mode = GPU if gpu else CPU_DRY_RUN
    if not gpu:
        print("gpu_check: no GPU here (torch.cuda.is_available() is "
              f"{torch.cuda.is_available()}); running the CPU dry run" + (" (--cpu)" if args.cpu else ""), flush=True)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="avssl-gpu-check-")))
        work.mkdir(parents=True, exist_ok=True)
        clips = args.clips or make_clips(work / "world", (mode.short_side,), videos=4, seconds=20.0)[mode.short_side]
        clips = clips.resolve()
        result = {
            "mode": mode.name, "gpu": torch.cuda.get_device_name() if gpu else None,
            "torch": torch.__version__, "settings": dataclasses.asdict(mode), "clips": str(clips),
            "throughput": {m: timed(lambda m=m: throughput(mode, m, clips, work)) for m in args.methods},
            "torchrun": timed(lambda: torchrun(mode, clips, work)),
            "decoding": timed(lambda: decoding(mode, clips)),
            "exact_resume": timed(lambda: exact_resume(mode, clips, work)),
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["ok"] = all(part["ok"] for part in [*result["throughput"].values(), result["torchrun"],
                                               result["decoding"], result["exact_resume"]])
    result["ok"] = result["ok"] and result["exact_resume"].get("bit_exact", False)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("mode", "gpu", "ok", "seconds")}), f"-> {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
