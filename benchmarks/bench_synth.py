"""How fast does the synthetic world render and encode on one core?

Writes ``--videos`` videos of ``--seconds`` each at ``--size`` x ``--size`` and ``--fps`` with workers=1
(x264 and AAC single-threaded, as in ``avssl synth``) into a temporary folder, and prints video-seconds
produced per wall-clock second, i.e. the multiple of real time on one core.

    .venv/bin/python benchmarks/bench_synth.py                  # 4 x 30 s at 128x128, 25 fps
    .venv/bin/python benchmarks/bench_synth.py --size 224 --seconds 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from avssl_core.config import SynthConfig
from avssl_core.synth.generate import generate_dataset


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each video")
    parser.add_argument("--size", type=int, default=128, help="frame width and height (even)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = dataclasses.replace(
        SynthConfig(),
        seed=args.seed,
        num_videos=args.videos,
        duration_s=args.seconds,
        fps=args.fps,
        width=args.size,
        height=args.size,
        sample_rate=args.sample_rate,
        workers=1,
    )
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        started = time.perf_counter()
        summary = generate_dataset(Path(tmp), cfg)
        wall = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "videos").glob("*.mp4")) / 1e6
    video_seconds = summary["video_seconds_written"]
    frames = video_seconds * args.fps
    result = {
        "videos": args.videos,
        "seconds_each": args.seconds,
        "size": f"{args.size}x{args.size}",
        "fps": args.fps,
        "sample_rate": args.sample_rate,
        "workers": 1,
        "wall_s": round(wall, 2),
        "video_seconds_per_second": round(video_seconds / wall, 2),
        "frames_per_second": round(frames / wall, 1),
        "times_real_time": round(video_seconds / wall, 2),
        "mp4_megabytes": round(size_mb, 2),
    }
    print(json.dumps(result, indent=2))
    print(
        f"{video_seconds:.0f} video-seconds in {wall:.2f} s on one core: {video_seconds / wall:.1f}x real time "
        f"({frames / wall:.0f} frames/s with audio)"
    )
    return result


if __name__ == "__main__":
    main()
